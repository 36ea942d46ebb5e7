import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadKeys } from '../../src/platform/auth/keys';
import { issueToken } from '../../src/platform/auth/tokens';
import { type AppConfig, loadConfig } from '../../src/platform/config';
import { createLogger } from '../../src/platform/logger';
import { type RunningService, type StartOptions, startService } from '../../src/server';
import { dropDatabase } from './database';

export const TEST_DB_PREFIX = 'optgate_test_';

export interface TestService extends RunningService {
  readonly config: AppConfig;
  readonly databaseUrl: string;
  /** A direct connection to this test's database, for arranging and inspecting rows. */
  readonly sql: pg.Pool;
  token(
    scopes: string,
    purposes?: string[],
    o?: { ttlSeconds?: number; subject?: string; claims?: Record<string, unknown> },
  ): Promise<string>;
  /** Stops the service and drops its database. */
  stop(): Promise<void>;
}

/** Keys are generated once per test process into a temporary folder, as a development start would. */
export const testKeysDir = path.join(process.env.OPTGATE_TEST_TMP ?? os.tmpdir(), 'keys');
const keysDir = testKeysDir;

export function testConfig(env: Record<string, string> = {}): AppConfig {
  const database = TEST_DB_PREFIX + randomBytes(6).toString('hex');
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: `postgres://localhost:5432/${database}`,
    REDIS_PREFIX: `optgate-test-${database}`,
    KEYS_DIR: keysDir,
    RUN_WORKERS: 'false',
    LOG_LEVEL: 'silent',
    DB_STATEMENT_TIMEOUT_MS: '1500',
    ...env,
  });
}

/** A real optgate instance on port 0 with its own database and Redis prefix. */
export async function startTestService(
  env: Record<string, string> = {},
  options: StartOptions = {},
): Promise<TestService> {
  const config = testConfig(env);
  const service = await startService(config, { logger: createLogger(config.logLevel), ...options });
  const sql = new pg.Pool({ connectionString: config.db.url, max: 3 });
  // Fail-closed tests cut this database's connections on purpose; an idle client hearing of it must not crash the test
  // run.
  sql.on('error', () => undefined);
  const keys = await loadKeys(config.auth, config.env);
  // Sessions, sign-in links and rate limits need Redis, whose connection may still be opening just after the start
  // (its commands are not queued while it is): wait for it, unless a test points the service at another Redis.
  if (env.REDIS_URL === undefined) await redisAnswering(service.url);
  return {
    ...service,
    config,
    databaseUrl: config.db.url,
    sql,
    token: (scopes, purposes = [], o = {}) =>
      issueToken(keys, config.auth, {
        subject: o.subject ?? 'test-pipeline',
        scopes: scopes.split(' '),
        purposes,
        ttlSeconds: o.ttlSeconds ?? 600,
        extraClaims: o.claims,
      }),
    async stop() {
      await service.close();
      await sql.end();
      await dropDatabase(config.db.url);
    },
  };
}

export interface Reply<T = any> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
}

/** fetch with JSON in and out; `body` is parsed when the reply is JSON of any kind. */
export async function call<T = any>(
  base: string,
  method: string,
  path: string,
  o: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  let body: string | undefined = o.raw;
  if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, headers: res.headers, body: /json/.test(type) && text ? JSON.parse(text) : text };
}

/** Waits (at most 5 s) until /readyz reports Redis answering. */
async function redisAnswering(base: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const ready = await call(base, 'GET', '/readyz').catch(() => undefined);
    if (ready?.body?.checks?.redis === 'ok') return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
