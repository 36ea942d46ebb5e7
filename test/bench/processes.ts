import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/platform/config/project-root';

/**
 * The processes under test: optgate (the built service, `node dist/src/main.js`) and the bare
 * express baseline, each a child process of the benchmark. Every child is registered so that
 * nothing is left running, whatever way the benchmark ends.
 */

export const ROOT = projectRoot();
const OPTGATE_MAIN = path.join(ROOT, 'dist', 'src', 'main.js');
export const OPTGATE_CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const BARE_SERVER = path.join(__dirname, 'bare-server.js');

const children = new Set<ChildProcess>();

/** Kills every child still running, by its pid (synchronous: usable from an 'exit' handler). */
export function killAllChildren(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}
process.once('exit', () => killAllChildren('SIGKILL'));

export interface ChildService {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  /** Log lines at level warn or above (pino JSON), and lines on stderr. */
  readonly problems: () => readonly string[];
  /**
   * CPU seconds (user + system) used by the process so far; undefined where /proc is not available or once it has
   * exited.
   */
  readonly cpu: () => CpuSnapshot | undefined;
  /** SIGTERM, then SIGKILL if it has not exited within the grace period. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface OptgateEnv {
  readonly databaseUrl: string;
  readonly keysDir: string;
  readonly redisPrefix: string;
  /** Extra environment, e.g. to switch a feature on or off for a variant of the benchmark. */
  readonly extra?: Record<string, string>;
  /** Options for node itself, before the script (e.g. --cpu-prof). */
  readonly nodeOptions?: readonly string[];
}

function optgateEnvironment(o: OptgateEnv, port?: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PGUSER: process.env.PGUSER,
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    ...(port === undefined ? {} : { PORT: String(port) }),
    DATABASE_URL: o.databaseUrl,
    REDIS_PREFIX: o.redisPrefix,
    RUN_WORKERS: 'false',
    LOG_LEVEL: 'warn',
    KEYS_DIR: o.keysDir,
    ...o.extra,
  };
}

/** Starts optgate and waits until GET /readyz answers 200. */
export async function startOptgate(o: OptgateEnv, name = 'optgate'): Promise<ChildService> {
  const port = await freePort();
  const args = [...(o.nodeOptions ?? []), OPTGATE_MAIN];
  return startChild(name, args, optgateEnvironment(o, port), `http://127.0.0.1:${port}`, '/readyz');
}

/** Starts the bare express baseline and waits until it answers. */
export async function startBare(): Promise<ChildService> {
  const port = await freePort();
  return startChild(
    'bare express',
    [BARE_SERVER],
    { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'production' },
    `http://127.0.0.1:${port}`,
    '/',
  );
}

/** `optgate token ...` with the same keys as the service: prints the token and nothing else. */
export async function mintToken(
  o: OptgateEnv,
  subject: string,
  scopes: string,
  purposes: readonly string[],
): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [OPTGATE_CLI, 'token', '--sub', subject, '--scope', scopes, '--purposes', purposes.join(','), '--ttl', '6h'],
    { env: optgateEnvironment(o), cwd: ROOT, timeout: 30_000 },
  );
  const token = stdout.trim();
  if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token))
    throw new Error(`optgate token printed something that is not a JWT: ${JSON.stringify(stdout.slice(0, 200))}`);
  return token;
}

async function startChild(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  url: string,
  readyPath: string,
): Promise<ChildService> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const problems: string[] = [];
  const tail: string[] = [];
  const remember = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  };
  lines(child.stdout!, (line) => {
    remember(line);
    // pino: 40 warn, 50 error, 60 fatal. Anything that is not a log line is worth a look too.
    let level: unknown;
    try {
      level = (JSON.parse(line) as { level?: unknown }).level;
    } catch {
      level = undefined;
    }
    if (typeof level !== 'number' || level >= 40) problems.push(line);
  });
  lines(child.stderr!, (line) => {
    remember(line);
    problems.push(line);
  });

  let stopRequested = false;
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      const status = signal ? `killed by ${signal}` : `exited with code ${code}`;
      if (!stopRequested) problems.push(`${name} (pid ${child.pid}) ${status} while it was being measured`);
      resolve(status);
    });
    child.once('error', (err) => {
      children.delete(child);
      resolve(`could not start: ${err.message}`);
    });
  });
  let exitStatus: string | undefined;
  void exited.then((s) => (exitStatus = s));

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exitStatus) throw new Error(`${name} ${exitStatus} before it was ready:\n${tail.join('\n')}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} was not ready at ${url}${readyPath} within 60 s:\n${tail.join('\n')}`);
    }
    const status = await fetch(url + readyPath, { signal: AbortSignal.timeout(1000) }).then(
      async (r) => {
        await r.arrayBuffer();
        return r.status;
      },
      () => 0,
    );
    if (status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }

  const pid = child.pid!;
  let stopping: Promise<void> | undefined;
  return {
    name,
    url,
    pid,
    problems: () => problems,
    cpu: processCpu(pid),
    stop: () =>
      (stopping ??= (async () => {
        stopRequested = true;
        if (exitStatus) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      })()),
  };
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) onLine(line);
    }
  });
  stream.on('end', () => {
    if (buffered.trim()) onLine(buffered);
  });
}

/** USER_HZ: 100 on every Linux that Node supports. */
const CLOCK_TICKS = 100;

/** utime + stime from /proc/<pid>/stat, in seconds (Linux). */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** CPU seconds per process, by pid: a snapshot to subtract from a later one. */
export type CpuSnapshot = ReadonlyMap<number, number>;

/**
 * CPU seconds used between two snapshots, counting only processes alive at the end (a process started in between counts
 * from zero).
 */
export function cpuBetween(before: CpuSnapshot | undefined, after: CpuSnapshot | undefined): number | undefined {
  if (!before || !after) return undefined;
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

/** One process, as a snapshot (undefined once it has exited). */
export function processCpu(pid: number): () => CpuSnapshot | undefined {
  return () => {
    const seconds = cpuSecondsOf(pid);
    return seconds === undefined ? undefined : new Map([[pid, seconds]]);
  };
}

/**
 * The PostgreSQL backends serving one database (Linux: /proc, matched on the process title
 * "postgres: user database ..."), so that other databases' work on the same server is not counted.
 */
export function postgresBackendsCpu(database: string): () => CpuSnapshot | undefined {
  const title = ` ${database} `;
  return () => {
    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return undefined;
    }
    const snapshot = new Map<number, number>();
    for (const entry of entries) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (!readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith('postgres')) continue;
        if (!readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(title)) continue;
      } catch {
        continue; // exited meanwhile
      }
      const seconds = cpuSecondsOf(Number(entry));
      if (seconds !== undefined) snapshot.set(Number(entry), seconds);
    }
    return snapshot;
  };
}
