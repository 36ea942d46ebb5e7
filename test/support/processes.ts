import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

/** The built service and CLI (npm test builds them first), run as real processes. */
export const ROOT = path.join(__dirname, '..', '..');
export const MAIN = path.join(ROOT, 'dist/src/main.js');
export const CLI = path.join(ROOT, 'dist/src/cli/main.js');

/** The environment under which the CLI shares a test service's database, Redis prefix, keys and portal address. */
export function cliEnv(svc: {
  databaseUrl: string;
  url: string;
  config: { redis: { prefix: string }; auth: { keysDir: string } };
}): Record<string, string> {
  return {
    DATABASE_URL: svc.databaseUrl,
    REDIS_PREFIX: svc.config.redis.prefix,
    KEYS_DIR: svc.config.auth.keysDir,
    PORTAL_BASE_URL: svc.url,
    LOG_LEVEL: 'silent',
  };
}

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<Finished> {
  const child = spawn(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    cwd: ROOT,
  });
  return finished(child, timeoutMs);
}

export function finished(child: ChildProcess, timeoutMs = 20_000): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`process timed out; stderr: ${stderr}`));
    }, timeoutMs);
    // 'close', not 'exit': it comes once the output pipes are drained too, so no last log line is missed.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Starts the built service and waits until /readyz answers 200. */
export async function startProcess(
  env: Record<string, string>,
  port: number,
): Promise<ChildProcess & { logs: () => string }> {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port) },
    cwd: ROOT,
  });
  let logs = '';
  child.stdout!.on('data', (d) => (logs += d));
  child.stderr!.on('data', (d) => (logs += d));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited: ${logs}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`service not ready: ${logs}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Object.assign(child, { logs: () => logs });
}

export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as import('node:net').AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
