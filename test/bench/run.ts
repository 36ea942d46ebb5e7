import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../src/platform/config';
import { currentNotice } from '../../src/platform/config/catalog';
import { deleteRedisPrefix } from '../support/database';
import { type ArchiveResult, archiveLines, measureArchival } from './archive';
import { type AuditLogResult, auditLogLines, measureAuditLog, requestExports } from './audit-log';
import { failures, type LoadResult, type LoadSpec, runLoad, stopLoad } from './load';
import { type BenchOptions, parseOptions, USAGE, UsageError } from './options';
import {
  auditFootprint,
  bytesPerRecord,
  fillCache,
  type InstanceMemory,
  instanceMemory,
  quantile,
  type RevocationResult,
  revocationLatency,
  untilCoherent,
} from './probes';
import {
  type ChildService,
  type CpuSnapshot,
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
import { measureWebhooks, type WebhookResult } from './webhooks';

/**
 * `npm run bench`: seeds optgate_bench, starts optgate (one instance per variant, then three
 * together, then the bare express baseline) as child processes, loads them with autocannon from
 * this process and prints one table, with the audit's bytes per record, an instance's memory with
 * every account cached and the revocation acknowledgement latency.
 * It only measures and prints: no timing is asserted. The exit code is non-zero when any answer
 * was not a right 2xx (or optgate logged a warning or an error), so that a fast but wrong run
 * cannot pass for a result.
 *
 * To add rows: add a variant to VARIANTS (a differently configured optgate, measured with the
 * same phases) or a phase to warmPhases (another endpoint).
 */

const DATABASE_URL = 'postgres://localhost:5432/optgate_bench';
const REDIS_PREFIX = 'optgate-bench';

/**
 * Differently configured optgate instances to measure with the same phases; `env` is added to the child's environment.
 */
interface Variant {
  readonly label: string;
  readonly env: Record<string, string>;
  /** Whether its decisions are recorded: the audit's bytes per decision are measured around each phase. */
  readonly audited: boolean;
  /** Whether a worker-only instance runs beside it. */
  readonly worker?: boolean;
}
const VARIANTS: readonly Variant[] = [
  // The baseline for what the durable audit costs: decisions answered without writing their records.
  { label: 'audit off', env: { AUDIT_DECISIONS: 'false' }, audited: false },
  // As deployed: every decision is answered only once its audit record is committed; background jobs (tree heads
  // every second, exports) in a worker process beside it (RUN_WORKERS=only).
  { label: 'audit on', env: { RUN_WORKERS: 'false' }, audited: true, worker: true },
];

/** Instances of the cluster phase: all on the same PostgreSQL and Redis, the load spread over them. */
const CLUSTER_SIZE = 3;
/** Consent writes measured for the revocation acknowledgement. */
const REVOCATION_CYCLES = 400;
/** Records of the fixed-size audit log phase (export, proofs). */
const AUDIT_LOG_RECORDS = 1_000_000;
/** Exports requested at once while decisions are measured. */
const CONCURRENT_EXPORTS = 30;
/** Webhook phase: writes one after another (latency), then writes at once (throughput). */
const WEBHOOK_WRITES = 200;
const WEBHOOK_BURST = 2_000;

interface Row {
  readonly scenario: string;
  readonly result: LoadResult;
  /**
   * Account decisions per request (1 for a single decision, the batch size for a batch, undefined when not a decision).
   */
  readonly decisionsPerCall?: number;
  /** Bytes the audit tables grew by per record written in the phase (warm-up included), when audited. */
  auditBytes?: number;
  /** Throughput relative to the bare express route, where that comparison means something. */
  vsBare?: number;
}

interface Phase {
  readonly scenario: Scenario;
  readonly connections: number;
  readonly decisionsPerCall: number;
  readonly comparesWithBare?: boolean;
}

/** The phases run against one optgate instance once its cache holds every account. */
function warmPhases(options: BenchOptions, data: SeedResult, token: string, url: string): Phase[] {
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

/** Memory of one instance, before and after its cache was filled with every account. */
interface MemoryReport {
  readonly name: string;
  readonly before: InstanceMemory;
  readonly after: InstanceMemory;
  readonly fillSeconds: number;
}

/** The CPU of several processes as one (the instances of the cluster phase). */
function combinedCpu(services: readonly ChildService[]): () => CpuSnapshot | undefined {
  return () => {
    const all = new Map<number, number>();
    for (const s of services) {
      const snapshot = s.cpu();
      if (!snapshot) return undefined;
      for (const [pid, seconds] of snapshot) all.set(pid, seconds);
    }
    return all;
  };
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
  // Queued jobs of an earlier run (exports it abandoned) must not reach this run's workers.
  await deleteRedisPrefix(REDIS_PREFIX);
  log(`seeding ${int(options.accounts)} accounts`);
  const data = await seed(dbUrl, options.accounts, config.catalog, options.seed);
  log(`seeded in ${(data.ms / 1000).toFixed(1)} s`);

  const rows: Row[] = [];
  const problems: string[] = [];
  const watchPostgres = { label: 'postgres', cpu: postgresBackendsCpu(new URL(dbUrl).pathname.slice(1)) };
  const measure = async (
    label: string,
    services: readonly ChildService[],
    scenario: Scenario,
    connections: number,
    o: { decisionsPerCall?: number; audited?: boolean } = {},
  ) => {
    const spec: LoadSpec = {
      ...scenario,
      connections,
      duration: options.duration,
      warmup: options.warmup,
      watch: [{ label: 'service', cpu: combinedCpu(services) }, watchPostgres],
    };
    log(`${label}: ${connections} connections, warm-up ${options.warmup} s, measuring ${options.duration} s`);
    const auditBefore = o.audited ? await auditFootprint(dbUrl) : undefined;
    const result = await runLoad(spec);
    for (const f of failures(result)) problems.push(`${label}: ${f}`);
    if (result.warmupStats) for (const f of failures(result.warmupStats)) problems.push(`${label} (warm-up): ${f}`);
    const row: Row = { scenario: label, result, decisionsPerCall: o.decisionsPerCall };
    if (auditBefore) row.auditBytes = bytesPerRecord(auditBefore, await auditFootprint(dbUrl));
    rows.push(row);
    return row;
  };
  const collectProblems = (service: ChildService) => {
    for (const line of service.problems()) problems.push(`${service.name}: ${line.slice(0, 500)}`);
  };

  const compared: Row[] = [];
  const memory: MemoryReport[] = [];
  for (const variant of VARIANTS) {
    const name = `optgate (${variant.label})`;
    log(`starting ${name}`);
    const env = { databaseUrl: DATABASE_URL, keysDir, redisPrefix: REDIS_PREFIX, extra: variant.env };
    const service = await startOptgate(env, name);
    const worker = variant.worker
      ? await startOptgate({ ...env, extra: { RUN_WORKERS: 'only' } }, `${name} worker`)
      : undefined;
    try {
      // Ready (PostgreSQL answers) comes before the cache's first lease: until then every lookup reads through.
      await untilCoherent([service.url]);
      const token = await mintToken(env, 'bench', 'decisions', [BENCH_PURPOSE]);
      // A fresh instance: every account it is asked about is read from PostgreSQL (and then kept).
      const cold = singleDecisions(service.url, token, data, options.seed + 3, 'each once');
      await measure(`${cold.name} (${variant.label})`, [service], cold, options.connections, {
        decisionsPerCall: 1,
        audited: variant.audited,
      });
      log(`${name}: filling the cache with all ${int(options.accounts)} accounts`);
      const before = await instanceMemory(service.url, service.pid);
      const fillSeconds = await fillCache(service.url, token, data, options.batchSize, options.batchConnections);
      memory.push({ name, before, after: await instanceMemory(service.url, service.pid), fillSeconds });
      for (const phase of warmPhases(options, data, token, service.url)) {
        const label = `${phase.scenario.name} (${variant.label})`;
        const row = await measure(label, [service], phase.scenario, phase.connections, {
          decisionsPerCall: phase.decisionsPerCall,
          audited: variant.audited,
        });
        if (phase.comparesWithBare) compared.push(row);
      }
    } finally {
      await service.stop();
      collectProblems(service);
      if (worker) {
        await worker.stop();
        collectProblems(worker);
      }
    }
  }

  // The audit log at a fixed size, and decisions while 30 exports run in the worker.
  let auditLog: AuditLogResult | undefined;
  const exportsCompared: Row[] = [];
  {
    log('starting optgate (audit on) and a worker for the audit log phase');
    const env = { databaseUrl: DATABASE_URL, keysDir, redisPrefix: REDIS_PREFIX, extra: { RUN_WORKERS: 'false' } };
    const api = await startOptgate(env, 'optgate (audit log phase)');
    const worker = await startOptgate({ ...env, extra: { RUN_WORKERS: 'only' } }, 'optgate worker (audit log phase)');
    try {
      await untilCoherent([api.url]);
      const decisionsToken = await mintToken(env, 'bench', 'decisions', [BENCH_PURPOSE]);
      const auditToken = await mintToken(env, 'bench-compliance', 'audit:read', []);
      const cliEnv = { PATH: process.env.PATH, KEYS_DIR: keysDir, DATABASE_URL };
      auditLog = await measureAuditLog({
        url: api.url,
        databaseUrl: dbUrl,
        decisionsToken,
        auditToken,
        data,
        records: AUDIT_LOG_RECORDS,
        batchSize: options.batchSize,
        env: cliEnv,
        log,
      });
      if (!auditLog.export.verified)
        problems.push(`audit verify failed: ${auditLog.export.verifyOutput.slice(0, 500)}`);
      log(`filling the cache with all ${int(options.accounts)} accounts`);
      await fillCache(api.url, decisionsToken, data, options.batchSize, options.batchConnections);
      const single = singleDecisions(api.url, decisionsToken, data, options.seed + 5);
      exportsCompared.push(
        await measure(`${single.name} (audit on, worker idle)`, [api], single, options.connections, {
          decisionsPerCall: 1,
          audited: true,
        }),
      );
      const tokens = await Promise.all(
        Array.from({ length: CONCURRENT_EXPORTS }, (_, i) =>
          mintToken(env, `bench-exporter-${String(i + 1).padStart(2, '0')}`, 'audit:read', []),
        ),
      );
      log(`requesting ${CONCURRENT_EXPORTS} exports of the whole log at once, from ${CONCURRENT_EXPORTS} clients`);
      await requestExports(api.url, tokens, new Date(0).toISOString());
      const during = singleDecisions(api.url, decisionsToken, data, options.seed + 6);
      exportsCompared.push(
        await measure(
          `${during.name} (audit on, ${CONCURRENT_EXPORTS} exports queued or running)`,
          [api],
          during,
          options.connections,
          { decisionsPerCall: 1, audited: true },
        ),
      );
    } finally {
      // The exports still queued are abandoned with the worker (the database is recreated by the next run).
      await worker.stop();
      await api.stop();
      collectProblems(api);
      collectProblems(worker);
    }
  }

  // Archival of one month of the log, in a database of its own.
  let archive: ArchiveResult | undefined;
  try {
    archive = await measureArchival({
      databaseUrl: dbUrl,
      keysDir,
      redisPrefix: REDIS_PREFIX,
      records: AUDIT_LOG_RECORDS,
      log,
    });
    if (!archive.verified) problems.push(`archival: verify failed: ${archive.output.slice(0, 500)}`);
  } catch (err) {
    problems.push(`archival: ${(err as Error).message.slice(0, 500)}`);
  }

  log(`starting ${CLUSTER_SIZE} optgate instances (audit on)`);
  const env = { databaseUrl: DATABASE_URL, keysDir, redisPrefix: REDIS_PREFIX };
  const cluster: ChildService[] = [];
  let revocation: RevocationResult | undefined;
  try {
    for (let i = 1; i <= CLUSTER_SIZE; i++) cluster.push(await startOptgate(env, `optgate instance ${i}`));
    const urls = cluster.map((c) => c.url);
    await untilCoherent(urls);
    const token = await mintToken(env, 'bench', 'decisions consents:write accounts:write', [BENCH_PURPOSE]);
    log(`filling the ${CLUSTER_SIZE} caches with all ${int(options.accounts)} accounts each`);
    // One after another: three instances filling at once only queue on the one audit chain.
    for (const url of urls) await fillCache(url, token, data, options.batchSize, options.batchConnections);
    const single = singleDecisions(urls, token, data, options.seed + 4);
    const row = await measure(
      `${single.name} (audit on, ${CLUSTER_SIZE} instances)`,
      cluster,
      single,
      options.connections,
      {
        decisionsPerCall: 1,
        audited: true,
      },
    );
    compared.push(row);
    log(`revocation: ${REVOCATION_CYCLES} consent writes while ${CLUSTER_SIZE} instances hold the account`);
    const notice = currentNotice(config.catalog, new Date());
    if (!notice) throw new Error('the catalog has no notice in force: the revocation probe cannot write consents');
    revocation = await revocationLatency(urls, token, notice.version, REVOCATION_CYCLES);
    if (revocation.stale) problems.push(`revocation: ${revocation.stale} decisions gave the state before a write`);
  } finally {
    await Promise.all(cluster.map((c) => c.stop()));
    cluster.forEach(collectProblems);
  }

  // Webhook delivery: an API instance, a worker that delivers, a receiver in this process.
  let webhooks: WebhookResult | undefined;
  {
    log('starting optgate and a worker for the webhooks phase');
    const env = { databaseUrl: DATABASE_URL, keysDir, redisPrefix: REDIS_PREFIX };
    const api = await startOptgate(env, 'optgate (webhooks phase)');
    const worker = await startOptgate({ ...env, extra: { RUN_WORKERS: 'only' } }, 'optgate worker (webhooks phase)');
    try {
      const token = await mintToken(env, 'bench-webhooks', 'webhooks:write consents:write accounts:write', [
        BENCH_PURPOSE,
      ]);
      const notice = currentNotice(config.catalog, new Date());
      if (!notice) throw new Error('the catalog has no notice in force: the webhooks phase cannot write consents');
      webhooks = await measureWebhooks({
        url: api.url,
        token,
        noticeVersion: notice.version,
        writes: WEBHOOK_WRITES,
        burst: WEBHOOK_BURST,
        log,
      });
    } catch (err) {
      problems.push(`webhooks: ${(err as Error).message.slice(0, 500)}`);
    } finally {
      await worker.stop();
      await api.stop();
      collectProblems(api);
      collectProblems(worker);
    }
  }

  log('starting the bare express baseline');
  const bare = await startBare();
  let bareRow: Row;
  try {
    bareRow = await measure('bare express route', [bare], bareRoute(bare.url), options.connections);
  } finally {
    await bare.stop();
    collectProblems(bare);
  }
  for (const row of compared) row.vsBare = row.result.okPerSecond / bareRow.result.okPerSecond;

  report({
    options,
    data,
    migrations,
    postgresVersion,
    started,
    loadBefore,
    rows,
    compared,
    bare: bareRow,
    memory,
    revocation,
    problems,
    auditLog,
    archive,
    exportsCompared,
    webhooks,
  });
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
  bare: Row;
  memory: MemoryReport[];
  revocation?: RevocationResult;
  problems: string[];
  auditLog?: AuditLogResult;
  archive?: ArchiveResult;
  exportsCompared: Row[];
  webhooks?: WebhookResult;
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
    { header: 'audit B/rec', value: (x) => (x.auditBytes === undefined ? '–' : int(x.auditBytes)) },
    { header: 'pg %core per 1k dec/s', value: (x) => num(postgresPerThousand(x)) },
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
    const p99 = row.result.latencyMs.p99;
    const bareP99 = r.bare.result.latencyMs.p99;
    out.push(
      `${row.scenario} / bare express route: ${num(row.result.okPerSecond)} / ${num(r.bare.result.okPerSecond)} ` +
        `req/s = ${row.vsBare!.toFixed(3)}; p99 ${num(p99)} / ${num(bareP99)} ms = ${(p99 / bareP99).toFixed(1)}×`,
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
  if (r.auditLog) out.push(...auditLogLines(r.auditLog, int));
  if (r.archive) out.push(...archiveLines(r.archive, int));
  const [idle, busy] = r.exportsCompared;
  if (idle && busy) {
    out.push(
      `decisions while ${CONCURRENT_EXPORTS} exports are queued or running in the worker: p99 ` +
        `${num(busy.result.latencyMs.p99)} ms vs ${num(idle.result.latencyMs.p99)} ms without = ` +
        `${(busy.result.latencyMs.p99 / idle.result.latencyMs.p99).toFixed(2)}×; ` +
        `${int(busy.result.okPerSecond)} vs ${int(idle.result.okPerSecond)} req/s`,
    );
  }

  for (const m of r.memory) {
    out.push(
      `${m.name}: cache filled with ${int(m.after.entries)} accounts in ${m.fillSeconds.toFixed(1)} s ` +
        `(${int(m.after.entries / m.fillSeconds)} accounts/s, batch calls); RSS ${mib(m.before.rss)} → ` +
        `${mib(m.after.rss)} MiB (cache's own estimate ${mib(m.after.cacheBytes)} MiB)`,
    );
  }
  if (r.revocation) {
    const ms = r.revocation.writeMs;
    out.push(
      `revocation acknowledged by ${CLUSTER_SIZE} instances holding the account: consent write p50 ` +
        `${num(quantile(ms, 0.5))} ms, p99 ${num(quantile(ms, 0.99))} ms, max ${num(Math.max(...ms))} ms over ` +
        `${ms.length} writes; decisions that then gave the state before the write: ${r.revocation.stale}`,
    );
  }
  if (r.webhooks) {
    const ms = r.webhooks.latencyMs;
    const { count, seconds, drainSeconds } = r.webhooks.burst;
    out.push(
      `webhook delivery, write answered → receiver (${ms.length} writes one after another, one endpoint): p50 ` +
        `${num(quantile(ms, 0.5))} ms, p99 ${num(quantile(ms, 0.99))} ms, max ${num(Math.max(...ms))} ms`,
      `webhook delivery throughput: ${int(count)} writes at once → all delivered in ${seconds.toFixed(1)} s = ` +
        `${int(count / seconds)} deliveries/s to one endpoint (in order); the last arrived ` +
        `${drainSeconds.toFixed(1)} s after the last write was answered`,
    );
  }
  out.push('', ...goals(r));
  out.push(
    'req/s counts 2xx answers only; latency is per request (per call for batches); "wrong" = 2xx answers that ' +
      'disagree with the seeded data;',
  );
  out.push(
    'CPU% is percent of one core over the measured phase (svc = the process(es) under test, pg = the postgres ' +
      'backends of optgate_bench, gen = autocannon in this process); "audit B/rec" = growth of the audit tables ' +
      '(heap, indexes, TOAST) per record written in the phase; "pg %core per 1k dec/s" = pg CPU% per 1,000 ' +
      'account-decisions/s.',
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

const mib = (bytes: number) => num(bytes / 2 ** 20);

/** Percent of a core the postgres backends used per 1,000 account-decisions per second. */
function postgresPerThousand(row: Row): number | undefined {
  const pg = row.result.cpuPercent.postgres;
  if (!row.decisionsPerCall || pg === undefined || row.result.okPerSecond === 0) return undefined;
  return pg / ((row.result.okPerSecond * row.decisionsPerCall) / 1000);
}

/** The goals of the decision path (issue 8), each against this run's own figures. */
function goals(r: { rows: Row[]; bare: Row; revocation?: RevocationResult; exportsCompared: Row[] }): string[] {
  const find = (scenario: string) => r.rows.find((x) => x.scenario === scenario);
  const single = find('single decision (audit on)');
  const batch = find('batch decisions (audit on)');
  const out = ['goals (same run):'];
  const goal = (text: string, value: string, met: boolean | undefined) =>
    out.push(`  ${met === undefined ? '?' : met ? 'met    ' : 'NOT met'}  ${text}: ${value}`);
  if (single) {
    goal(
      'single decision, durable audit, warm cache ≥ 0.7× the bare route',
      `${single.vsBare?.toFixed(3)}×`,
      (single.vsBare ?? 0) >= 0.7,
    );
    const p99 = single.result.latencyMs.p99 / r.bare.result.latencyMs.p99;
    goal('its p99 ≤ 2× the bare route p99', `${p99.toFixed(1)}×`, p99 <= 2);
    const pg = postgresPerThousand(single);
    goal(
      'PostgreSQL ≤ 10% of a core per 1,000 single decisions/s',
      `${num(pg)}%`,
      pg === undefined ? undefined : pg <= 10,
    );
    goal(
      'audit ≤ 350 bytes per single decision',
      `${int(single.auditBytes)} B`,
      single.auditBytes === undefined ? undefined : single.auditBytes <= 350,
    );
  }
  if (batch) {
    const rate = batch.result.okPerSecond * (batch.decisionsPerCall ?? 0);
    goal('audited batches ≥ 300,000 account-decisions/s', int(rate), rate >= 300_000);
    goal(
      'audit ≤ 100 bytes per account-decision in a batch',
      `${int(batch.auditBytes)} B`,
      batch.auditBytes === undefined ? undefined : batch.auditBytes <= 100,
    );
  }
  if (r.revocation) {
    const p99 = quantile(r.revocation.writeMs, 0.99);
    goal(`revocation acknowledged on ${CLUSTER_SIZE} instances ≤ 50 ms p99`, `${num(p99)} ms`, p99 <= 50);
  }
  const [idle, busy] = r.exportsCompared;
  if (idle && busy) {
    const ratio = busy.result.latencyMs.p99 / idle.result.latencyMs.p99;
    goal(`decision p99 during ${CONCURRENT_EXPORTS} exports ≤ 2× without`, `${ratio.toFixed(2)}×`, ratio <= 2);
  }
  return out;
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
