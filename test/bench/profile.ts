import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/platform/config';
import { deleteRedisPrefix, dropDatabase } from '../support/database';
import { failures, runLoad } from './load';
import { intOption } from './options';
import { fillCache, untilCoherent } from './probes';
import { killAllChildren, mintToken, ROOT, startOptgate } from './processes';
import { batchDecisions, singleDecisions } from './scenarios';
import { BENCH_PURPOSE, resetDatabase, seed } from './seed';
import { type Column, int, num, renderMarkdown } from './table';

/**
 * `npm run bench:profile`: where one instance spends its CPU on decisions with a warm cache. Seeds optgate_profile,
 * starts optgate under `node --cpu-prof`, fills its cache, loads POST /v1/decisions (or /batch) for the given
 * seconds, stops it, and prints the profile's top frames by self time and the same time by area (optgate's own
 * components, each package, node's internals, the garbage collector). The whole life of the process is in the
 * profile (start, the cache fill): with a load of 20 s or more they are a small part of it.
 */

const USAGE = `usage: npm run bench:profile -- [options]

  --accounts N        accounts to seed (default 20000)
  --duration SECONDS  load on single decisions (default 20)
  --connections C     concurrent connections (default 64; 4 for batches, as npm run bench)
  --audit on|off      decisions durably recorded, as deployed (default on), or not
  --endpoint single|batch
                      POST /v1/decisions (default), or /v1/decisions/batch with 10,000 accounts a call
  --top N             frames to list (default 25)
  --keep DIR          keep the .cpuprofile in DIR (for a flame graph tool)
`;

/** Its own database and keys, dropped at the end: never npm run bench's. */
const DATABASE_URL = 'postgres://localhost:5432/optgate_profile';
const REDIS_PREFIX = 'optgate-profile';
const log = (message: string) => process.stderr.write(`[profile] ${message}\n`);

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
}

interface Share {
  readonly name: string;
  readonly samples: number;
  readonly ofBusy: number;
}

/** Where a script lives: a package, a part of node, or one of optgate's components. */
export function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const own = url.indexOf('/dist/src/');
  if (own >= 0) return `optgate ${path.dirname(url.slice(own + '/dist/src/'.length))}`;
  return url;
}

function frameOf(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  if (!url) return functionName || '(anonymous)';
  const short = url.replace(`file://${ROOT}/`, '').replace(/^.*\/node_modules\//, '');
  return `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`;
}

/** Self samples by frame and by area; shares are of the samples that were not idle. */
export function summarise(profile: CpuProfile): { busy: number; total: number; frames: Share[]; areas: Share[] } {
  const byNode = new Map<number, number>();
  for (const id of profile.samples) byNode.set(id, (byNode.get(id) ?? 0) + 1);
  const frames = new Map<string, number>();
  const areas = new Map<string, number>();
  let busy = 0;
  for (const node of profile.nodes) {
    const n = byNode.get(node.id) ?? 0;
    if (!n || node.callFrame.functionName === '(idle)') continue;
    busy += n;
    const frame = frameOf(node);
    frames.set(frame, (frames.get(frame) ?? 0) + n);
    const area = areaOf(node.callFrame.url, node.callFrame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + n);
  }
  const shares = (m: Map<string, number>) =>
    [...m].map(([name, samples]) => ({ name, samples, ofBusy: samples / busy })).sort((a, b) => b.samples - a.samples);
  return { busy, total: profile.samples.length, frames: shares(frames), areas: shares(areas) };
}

/** The audit's group commits over the whole run, from the instance's metrics: how long each took, how many records. */
function groupCommits(metrics: string): string | undefined {
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
  const commits = value('optgate_audit_commit_seconds_count');
  if (!(commits > 0)) return undefined;
  const ms = (value('optgate_audit_commit_seconds_sum') / commits) * 1000;
  const records = value('optgate_audit_commit_records_sum') / commits;
  return `Audit group commits: ${int(commits)}, on average ${num(ms)} ms and ${num(records)} records each.`;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      accounts: { type: 'string' },
      duration: { type: 'string' },
      connections: { type: 'string' },
      audit: { type: 'string', default: 'on' },
      endpoint: { type: 'string', default: 'single' },
      top: { type: 'string' },
      keep: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const accounts = intOption('--accounts', values.accounts, 20_000, 1, 50_000_000);
  const duration = intOption('--duration', values.duration, 20, 1, 3600);
  const top = intOption('--top', values.top, 25, 1, 1000);
  if (values.audit !== 'on' && values.audit !== 'off') throw new Error(`--audit: on or off\n\n${USAGE}`);
  const batch = values.endpoint === 'batch';
  if (!batch && values.endpoint !== 'single') throw new Error(`--endpoint: single or batch\n\n${USAGE}`);
  const what = `${batch ? 'batch' : 'single'} decisions (audit ${values.audit})`;
  const connections = intOption('--connections', values.connections, batch ? 4 : 64, 1, 10_000);
  const perCall = batch ? Math.min(10_000, accounts) : 1;

  const keysDir = mkdtempSync(path.join(os.tmpdir(), 'optgate-profile-keys-'));
  const profileDir = values.keep ?? mkdtempSync(path.join(os.tmpdir(), 'optgate-profile-'));
  // The same resolution as the service: the user name filled into the URL.
  const config = loadConfig({ DATABASE_URL, KEYS_DIR: keysDir, PGUSER: process.env.PGUSER, LOG_LEVEL: 'warn' });
  try {
    log(`resetting ${new URL(config.db.url).pathname.slice(1)} and seeding ${int(accounts)} accounts`);
    await resetDatabase(config.db.url);
    await deleteRedisPrefix(REDIS_PREFIX);
    const data = await seed(config.db.url, accounts, config.catalog, 1);

    const env = {
      databaseUrl: DATABASE_URL,
      keysDir,
      redisPrefix: REDIS_PREFIX,
      extra: { AUDIT_DECISIONS: values.audit === 'on' ? 'true' : 'false' },
      nodeOptions: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    };
    const service = await startOptgate(env, `optgate (audit ${values.audit}, profiled)`);
    let result: Awaited<ReturnType<typeof runLoad>>;
    let commits: string | undefined;
    try {
      await untilCoherent([service.url]);
      const token = await mintToken(env, 'bench', 'decisions', [BENCH_PURPOSE]);
      await fillCache(service.url, token, data, 10_000, 2);
      log(`${what}: ${connections} connections for ${duration} s`);
      result = await runLoad({
        ...(batch
          ? batchDecisions(service.url, token, data, 2, perCall)
          : singleDecisions(service.url, token, data, 2)),
        connections,
        duration,
        warmup: 0,
      });
      commits = groupCommits(await (await fetch(`${service.url}/metrics`)).text());
    } finally {
      await service.stop();
    }
    const problems = [...failures(result), ...service.problems()];
    const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no .cpuprofile in ${profileDir}: did the service exit cleanly?`);
    const summary = summarise(JSON.parse(readFileSync(path.join(profileDir, file), 'utf8')) as CpuProfile);

    const columns: Column<Share>[] = [
      { header: 'self time', align: 'right', value: (s) => `${num(s.ofBusy * 100)}%` },
      { header: 'samples', align: 'right', value: (s) => int(s.samples) },
    ];
    const out = [
      `${what}, ${int(accounts)} accounts, ${connections} connections, ${duration} s:`,
      `${int(result.ok)} answered 2xx, ${num(result.ok / duration)} req/s, ${num((result.ok * perCall) / duration)} ` +
        `decisions/s, p99 ${num(result.latencyMs.p99)} ms` +
        ` (the profiler slows the process; compare with npm run bench only in kind).`,
      ...(commits ? [commits] : []),
      `Busy ${int(summary.busy)} of ${int(summary.total)} samples; shares below are of the busy ones.`,
      '',
      `Top ${top} frames by self time:`,
      '',
      renderMarkdown(
        [{ header: 'frame', align: 'left', value: (s: Share) => s.name }, ...columns],
        summary.frames.slice(0, top),
      ),
      '',
      'By area:',
      '',
      renderMarkdown(
        [{ header: 'area', align: 'left', value: (s: Share) => s.name }, ...columns],
        summary.areas.slice(0, top),
      ),
    ];
    if (problems.length) out.push('', 'Problems:', ...problems.map((p) => `- ${p.slice(0, 300)}`));
    if (values.keep) out.push('', `Profile kept: ${path.join(profileDir, file)}`);
    process.stdout.write(`${out.join('\n')}\n`);
    return problems.length ? 1 : 0;
  } finally {
    rmSync(keysDir, { recursive: true, force: true });
    if (!values.keep) rmSync(profileDir, { recursive: true, force: true });
    await dropDatabase(config.db.url).catch(() => undefined);
    await deleteRedisPrefix(REDIS_PREFIX).catch(() => undefined);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      killAllChildren('SIGKILL');
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    },
  );
}
