import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { loadConfig } from '../../src/platform/config';
import { dropDatabase } from '../support/database';
import { TEST_DB_PREFIX, testKeysDir } from '../support/harness';
import { CLI, finished, freePort, run, startProcess } from '../support/processes';

/** The built service and CLI as an operator runs them: npm start's process, npx optgate's commands. */

const database = TEST_DB_PREFIX + randomBytes(6).toString('hex');
const env = {
  DATABASE_URL: `postgres://localhost:5432/${database}`,
  REDIS_PREFIX: `optgate-test-${database}`,
  KEYS_DIR: testKeysDir,
  LOG_LEVEL: 'info',
  RUN_WORKERS: 'true',
};

afterAll(() => dropDatabase(loadConfig(env).db.url));

it('migrate creates the database and is idempotent', async () => {
  const first = await run(CLI, ['migrate'], env);
  expect(first.stderr).toBe('');
  expect(first.code).toBe(0);
  expect(first.stdout).toMatch(/applied: 0001_policy_foundation/);
  const second = await run(CLI, ['migrate'], env);
  expect(second.stdout).toBe('database is up to date\n');
});

it(
  'serves, answers a token minted by the CLI, logs JSON without subscriber data, and stops cleanly on ' + 'SIGTERM',
  async () => {
    const port = await freePort();
    const child = await startProcess(env, port);
    const minted = await run(
      CLI,
      ['token', '--sub', 'crm', '--scope', 'decisions accounts:write', '--purposes', 'billing', '--ttl', '10m'],
      env,
    );
    expect(minted.code).toBe(0);
    const token = minted.stdout.trim();
    expect(minted.stdout).toBe(`${token}\n`);
    expect(token.split('.')).toHaveLength(3);

    const base = `http://127.0.0.1:${port}`;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const accountId = `SUBSCRIBER-${randomBytes(4).toString('hex')}`;
    expect(
      (
        await fetch(`${base}/v1/accounts`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ accounts: [{ accountId, status: 'active' }] }),
        })
      ).status,
    ).toBe(200);
    const decision = await fetch(`${base}/v1/decisions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ accountId, purpose: 'billing', categories: ['billing_info'] }),
    });
    expect(((await decision.json()) as { allow: boolean }).allow).toBe(true);

    child.kill('SIGTERM');
    const end = await finished(child);
    expect(end.code).toBe(0);
    const lines = child.logs().trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(lines.some((l) => JSON.parse(l).route === '/v1/decisions')).toBe(true);
    expect(child.logs()).not.toContain(accountId);
    expect(child.logs()).not.toContain(token);
    expect(lines.at(-1)).toMatch(/optgate stopped/);
  },
);

it('refuses to start with a bad configuration, naming the variable', async () => {
  const port = await freePort();
  const r = await run(path.join(__dirname, '../../dist/src/main.js'), [], {
    ...env,
    PORT: String(port),
    REDIS_URL: 'http://nope',
    DB_POOL_SIZE: '0',
  });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/REDIS_URL/);
  expect(r.stderr).toMatch(/DB_POOL_SIZE/);
});

it('token: usage errors exit 2 and print no token', async () => {
  const missing = await run(CLI, ['token', '--scope', 'decisions'], env);
  expect(missing.code).toBe(2);
  expect(missing.stdout).toBe('');
  expect(missing.stderr).toMatch(/--sub/);
  const badScope = await run(CLI, ['token', '--sub', 'x', '--scope', 'everything'], env);
  expect(badScope.code).toBe(2);
  expect(badScope.stderr).toMatch(/unknown scope/);
  const badPurpose = await run(CLI, ['token', '--sub', 'x', '--scope', 'decisions', '--purposes', 'snooping'], env);
  expect(badPurpose.code).toBe(2);
  const unknown = await run(CLI, ['frobnicate'], env);
  expect(unknown.code).toBe(2);
});
