import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../src/platform/config';
import { type ExportResult, exportAndVerify } from './audit-export';
import { failures, type LoadResult, type LoadSpec, runLoad, stopLoad } from './load';
import { type BenchOptions, parseOptions, USAGE, UsageError } from './options';
import {
  type ChildService,
  killAllChildren,
  mintToken,
  postgresBackendsCpu,
  ROOT,
  startBare,
  startOptgate,
} from './processes';
import { bareRoute, batchCallSize, batchDecisions, type Scenario, singleDecisions } from './scenarios';
import { BENCH_PURPOSE, resetDatabase, type SeedResult, seed } from './seed';
import { type Column, int, num, percent, renderMarkdown, renderText } from './table';

/**
 * `npm run bench`: seeds optgate_bench, starts optgate (and later the bare express baseline) as
 * child processes, loads them with autocannon from this process and prints one table.
 * It only measures and prints: no timing is asserted. The exit code is non-zero when any answer
 * was not a right 2xx (or optgate logged a warning or an error), so that a fast but wrong run
 * cannot pass for a result.
 *
 * To add rows: add a variant to VARIANTS (a differently configured optgate, measured with the
 * same phases) or a phase to optgatePhases (another endpoint).
 */

const DATABASE_URL = 'postgres://localhost:5432/optgate_bench';
const REDIS_PREFIX = 'optgate-bench';

/**
 * Differently configured optgate instances to measure with the same phases; `env` is added to the child's environment.
 */
interface Variant {
  readonly label: string;
  readonly env: Record<string, string>;
}
const VARIANTS: readonly Variant[] = [
  // The baseline for what the durable audit costs: decisions answered without writing their records.
  { label: 'audit off', env: { AUDIT_DECISIONS: 'false' } },
  // As deployed: every decision is answered only once its audit record is committed. Workers on, for the export.
  { label: 'audit on', env: { RUN_WORKERS: 'true' } },
];

interface Row {
  readonly scenario: string;
  readonly result: LoadResult;
  /**
   * Account decisions per request (1 for a single decision, the batch size for a batch, undefined when not a decision).
   */
  readonly decisionsPerCall?: number;
  /** Throughput relative to the bare express route, where that comparison means something. */
  vsBare?: number;
}

interface Context {
  readonly options: BenchOptions;
  readonly data: SeedResult;
  readonly token: string;
}

/** The phases run against one optgate instance. */
function optgatePhases(
  ctx: Context,
  url: string,
): { scenario: Scenario; connections: number; decisionsPerCall: number; comparesWithBare?: boolean }[] {
  const { options, data, token } = ctx;
  return [
    {
      scenario: singleDecisions(url, token, data, options.seed + 1),
      connections: options.connections,
      decisionsPerCall: 1,
      comparesWithBare: true,
    },
    {
      scenario: batchDecisions(url, token, data, options.seed + 2, options.batchSize),
      connections: options.batchConnections,
      decisionsPerCall: batchCallSize(data, options.batchSize),
    },
  ];
}

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

let keysDir: string | undefined;
const cleanup = () => {
  killAllChildren('SIGKILL');
  if (keysDir) rmSync(keysDir, { recursive: true, force: true });
  keysDir = undefined;
};

async function main(argv: string[]): Promise<number> {
  const parsed = parseOptions(argv);
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const options = parsed;
  keysDir = mkdtempSync(path.join(os.tmpdir(), 'optgate-bench-keys-'));
  // The same resolution as the service: the catalog from config/, the user name filled into the URL.
  const config = loadConfig({ DATABASE_URL, KEYS_DIR: keysDir, PGUSER: process.env.PGUSER, LOG_LEVEL: 'warn' });
  const dbUrl = config.db.url;
  const started = new Date();
  const loadBefore = os.loadavg();
  const postgresVersion = await serverVersion(dbUrl);

  log(`resetting ${new URL(dbUrl).pathname.slice(1)} and migrating`);
  const migrations = await resetDatabase(dbUrl);
  log(`seeding ${int(options.accounts)} accounts`);
  const data = await seed(dbUrl, options.accounts, config.catalog, options.seed);
  log(`seeded in ${(data.ms / 1000).toFixed(1)} s`);

  const rows: Row[] = [];
  const problems: string[] = [];
  const watchPostgres = { label: 'postgres', cpu: postgresBackendsCpu(new URL(dbUrl).pathname.slice(1)) };
  const measure = async (
    label: string,
    service: ChildService,
    scenario: Scenario,
    connections: number,
    decisionsPerCall?: number,
  ) => {
    const spec: LoadSpec = {
      ...scenario,
      connections,
      duration: options.duration,
      warmup: options.warmup,
      watch: [{ label: 'service', cpu: service.cpu }, watchPostgres],
    };
    log(`${label}: ${connections} connections, warm-up ${options.warmup} s, measuring ${options.duration} s`);
    const result = await runLoad(spec);
    for (const f of failures(result)) problems.push(`${label}: ${f}`);
    if (result.warmupStats) for (const f of failures(result.warmupStats)) problems.push(`${label} (warm-up): ${f}`);
    const row: Row = { scenario: label, result, decisionsPerCall };
    rows.push(row);
    return row;
  };

  const compared: Row[] = [];
  let exported: ExportResult | undefined;
  for (const variant of VARIANTS) {
    const name = variant.label ? `optgate (${variant.label})` : 'optgate';
    log(`starting ${name}`);
    const env = { databaseUrl: DATABASE_URL, keysDir, redisPrefix: REDIS_PREFIX, extra: variant.env };
    const service = await startOptgate(env, name);
    try {
      const token = await mintToken(env, 'bench', 'decisions', [BENCH_PURPOSE]);
      for (const phase of optgatePhases({ options, data, token }, service.url)) {
        const label = variant.label ? `${phase.scenario.name} (${variant.label})` : phase.scenario.name;
        const row = await measure(label, service, phase.scenario, phase.connections, phase.decisionsPerCall);
        if (phase.comparesWithBare) compared.push(row);
      }
      if (variant.env.RUN_WORKERS === 'true') {
        log('exporting the whole audit log and verifying the file');
        const auditToken = await mintToken(env, 'bench-compliance', 'audit:read', []);
        exported = await exportAndVerify(service.url, auditToken, {
          PATH: process.env.PATH,
          KEYS_DIR: keysDir,
          DATABASE_URL,
        });
        if (!exported.verified) problems.push(`audit verify failed: ${exported.verifyOutput.slice(0, 500)}`);
      }
    } finally {
      await service.stop();
      for (const line of service.problems()) problems.push(`${name}: ${line.slice(0, 500)}`);
    }
  }

  log('starting the bare express baseline');
  const bare = await startBare();
  let bareRow: Row;
  try {
    bareRow = await measure('bare express route', bare, bareRoute(bare.url), options.connections);
  } finally {
    await bare.stop();
    for (const line of bare.problems()) problems.push(`bare server: ${line.slice(0, 500)}`);
  }
  for (const row of compared) row.vsBare = row.result.okPerSecond / bareRow.result.okPerSecond;

  report({ options, data, migrations, postgresVersion, started, loadBefore, rows, compared, problems, exported });
  return problems.length ? 1 : 0;
}

function report(r: {
  options: BenchOptions;
  data: SeedResult;
  migrations: string[];
  postgresVersion: string;
  started: Date;
  loadBefore: number[];
  rows: Row[];
  compared: Row[];
  problems: string[];
  exported?: ExportResult;
}): void {
  const { options, data } = r;
  const cpus = os.cpus();
  const out: string[] = [];
  out.push('', 'optgate benchmark', '=================');
  out.push(`date:        ${r.started.toISOString()}   commit: ${commit()}`);
  out.push(
    `machine:     ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ` +
      `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}`,
  );
  // Anything else running on the machine (a test suite, a build) shows here and makes the numbers noisy.
  out.push(
    `load avg:    ${r.loadBefore.map((l) => l.toFixed(2)).join(' ')} at start (1/5/15 min; ${cpus.length} CPUs)`,
  );
  out.push(
    `runtime:     Node ${process.version}, autocannon 9 in the benchmark process (same machine: it competes for ` +
      `the CPUs)`,
  );
  out.push(
    `database:    ${r.postgresVersion}; optgate_bench recreated, migrations: ${r.migrations.join(', ') || 'none'}`,
  );
  out.push(
    `load:        ${options.duration} s measured per phase after ${options.warmup} s warm-up; ` +
      `${options.connections} connections` +
      (options.batchConnections !== options.connections ? `, ${options.batchConnections} for batches` : '') +
      `; seed ${options.seed}`,
  );
  out.push(
    `seeded:      ${int(options.accounts)} accounts, ${int(data.events)} consent events, ${int(data.states)} ` +
      `consent_state rows in ${(data.ms / 1000).toFixed(1)} s`,
  );
  out.push(
    `             ${Object.entries(data.mix)
      .map(([k, v]) => `${k} ${percent((v / options.accounts) * 100)}`)
      .join(' · ')}`,
  );
  out.push('');

  const columns: Column<Row>[] = [
    { header: 'scenario', align: 'left', value: (x) => x.scenario },
    { header: 'conns', value: (x) => String(x.result.connections) },
    { header: 'req/s', value: (x) => num(x.result.okPerSecond) },
    {
      header: 'decisions/s',
      value: (x) => (x.decisionsPerCall ? int(x.result.okPerSecond * x.decisionsPerCall) : '–'),
    },
    { header: 'p50 ms', value: (x) => num(x.result.latencyMs.p50) },
    { header: 'p99 ms', value: (x) => num(x.result.latencyMs.p99) },
    { header: 'vs bare', value: (x) => (x.vsBare === undefined ? '–' : `${x.vsBare.toFixed(3)}×`) },
    { header: 'allow', value: (x) => allowShare(x) },
    { header: 'requests', value: (x) => int(x.result.responses) },
    { header: 'non-2xx', value: (x) => int(x.result.non2xx) },
    { header: 'errors', value: (x) => int(x.result.errors) },
    { header: 'wrong', value: (x) => int(x.result.mismatches) },
    {
      header: 'CPU% svc/pg/gen',
      value: (x) =>
        ['service', 'postgres', 'load generator']
          .map((k) => (x.result.cpuPercent[k] === undefined ? '–' : Math.round(x.result.cpuPercent[k]!)))
          .join('/'),
    },
  ];
  out.push(renderText(columns, r.rows), '');

  for (const row of r.compared) {
    out.push(
      `${row.scenario} / bare express route throughput: ${num(row.result.okPerSecond)} / ` +
        `${num(r.rows.find((x) => x.scenario === 'bare express route')!.result.okPerSecond)} req/s = ` +
        `${row.vsBare!.toFixed(3)}`,
    );
  }
  for (const row of r.rows) {
    if (row.decisionsPerCall && row.decisionsPerCall > 1) {
      out.push(
        `${row.scenario}: ${int(row.decisionsPerCall)} accounts per call → ${num(row.result.okPerSecond)} ` +
          `calls/s, ${int(row.result.okPerSecond * row.decisionsPerCall)} account-decisions/s`,
      );
    }
  }
  for (const row of r.rows) {
    const reasons = Object.entries(row.result.tally).filter(([k]) => k.includes(':'));
    if (reasons.length) {
      const total = reasons.reduce((s, [, n]) => s + n, 0);
      out.push(
        `${row.scenario} answers: ${reasons
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k} ${percent((n / total) * 100)}`)
          .join(' · ')}`,
      );
    }
  }
  // What the durable audit costs: the same phase with it off and on.
  for (const row of r.rows.filter((x) => x.scenario.endsWith('(audit on)'))) {
    const off = r.rows.find((x) => x.scenario === row.scenario.replace('(audit on)', '(audit off)'));
    if (!off) continue;
    const cost = (1 - row.result.okPerSecond / off.result.okPerSecond) * 100;
    const goal = row.decisionsPerCall === 1 ? ` (goal: at most 20%: ${cost <= 20 ? 'met' : 'NOT met'})` : '';
    const change =
      cost >= 0
        ? `${cost.toFixed(1)}% fewer`
        : `none measurable (${(-cost).toFixed(1)}% more with it on: run-to-run noise)`;
    out.push(
      `durable audit cost, ${row.scenario.replace(' (audit on)', '')}: ${num(off.result.okPerSecond)} → ` +
        `${num(row.result.okPerSecond)} req/s = ${change}${goal}`,
    );
  }
  if (r.exported) {
    const e = r.exported;
    out.push(
      `audit export: ${int(e.rows)} rows, ${(e.bytes / 2 ** 20).toFixed(1)} MiB in ${e.exportSeconds.toFixed(1)} ` +
        `s = ${int(e.rows / e.exportSeconds)} rows/s (request to completed, ndjson, stored in PostgreSQL)`,
    );
    out.push(
      `audit verify: ${int(e.rows)} rows in ${e.verifySeconds.toFixed(1)} s = ${int(e.rows / e.verifySeconds)} ` +
        `rows/s (optgate audit verify FILE --manifest --jwks: ${e.verified ? 'INTACT' : 'FAILED'})`,
    );
  }
  out.push(
    'req/s counts 2xx answers only; latency is per request (per call for batches); "wrong" = 2xx answers that ' +
      'disagree with the seeded data;',
  );
  out.push(
    'CPU% is percent of one core over the measured phase (svc = the process under test, pg = the postgres ' +
      'backends of optgate_bench, gen = autocannon in this process).',
  );
  out.push('', 'Markdown:', '', renderMarkdown(columns, r.rows), '');

  if (r.problems.length) {
    out.push('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
    out.push(`!!! BENCHMARK INVALID: ${r.problems.length} problem(s); these numbers include failed or wrong answers:`);
    for (const p of r.problems.slice(0, 30)) out.push(`!!!   ${p}`);
    if (r.problems.length > 30) out.push(`!!!   ... and ${r.problems.length - 30} more`);
    out.push('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
  } else {
    out.push('correctness: every response was a 2xx, and every decision agreed with the seeded data.');
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

function allowShare(row: Row): string {
  const t = row.result.tally;
  let allow = 0;
  let total = 0;
  for (const [k, n] of Object.entries(t)) {
    if (k === 'allow' || k.startsWith('allow:')) allow += n;
    if (k === 'allow' || k === 'deny' || k.startsWith('allow:') || k.startsWith('deny:')) total += n;
  }
  return total ? percent((allow / total) * 100) : '–';
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url.replace(/\/[^/]*$/, '/postgres') });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>("select current_setting('server_version') as v");
    return `PostgreSQL ${rows[0]!.v.split(' ')[0]}`;
  } finally {
    await client.end();
  }
}

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    return head + (dirty ? ' (with uncommitted changes)' : '');
  } catch {
    return 'none (no commit yet)';
  }
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: stopping the load and the child processes`);
    stopLoad();
    cleanup();
    process.exit(130);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    cleanup();
    process.exit(code);
  },
  (err: Error) => {
    cleanup();
    process.stderr.write(
      err instanceof UsageError ? `bench: ${err.message}\n\n${USAGE}` : `bench: FAILED: ${err.stack ?? err.message}\n`,
    );
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
