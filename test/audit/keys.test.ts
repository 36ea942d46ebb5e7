import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet } from 'jose';
import { auditRows, deleteRedisPrefix, tempDir, until, verifyDb } from '../support/audit';
import { createAccount, decide } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { CLI, run } from '../support/processes';

/**
 * Keys outlive rotation: `optgate keys rotate` makes a new signing key, keeps the old public key in
 * the JWKS marked retired, and records the rotation on the chain; after a restart, what the old key
 * signed still verifies, new signatures carry the new key id, and `verify --db` is intact.
 */

let dir: string;
let first: TestService;
let second: TestService | undefined;

const env = () => ({ RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '200', KEYS_DIR: dir });
const jwksOf = async (svc: TestService) => (await call(svc.url, 'GET', '/.well-known/jwks.json')).body as JSONWebKeySet;
const latestHead = async (svc: TestService, token: string, after = 0) =>
  until('a new tree head', async () => {
    const r = await call(svc.url, 'GET', '/v1/audit/tree-heads/latest', { token });
    return r.status === 200 && r.body.treeSize > after ? r.body : undefined;
  });

beforeAll(async () => {
  dir = await tempDir();
  first = await startTestService(env());
});
afterAll(async () => {
  await second?.close();
  await second?.sql.end();
  await first.stop();
  await deleteRedisPrefix(first.config.redis.prefix);
  await rm(dir, { recursive: true, force: true });
});

it('rotates; old signatures verify with the published JWKS; new ones use the new key; verify --db intact', async () => {
  const token = await first.token('decisions accounts:write audit:read', ['ad_targeting'], { ttlSeconds: 3600 });
  const account = await createAccount(first, token);
  await decide(first, token, { accountId: account, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
  const oldHead = await latestHead(first, token);
  const [oldKey] = (await jwksOf(first)).keys;
  expect(decodeProtectedHeader(oldHead.jws).kid).toBe(oldKey!.kid);

  const cliEnv = { DATABASE_URL: first.databaseUrl, KEYS_DIR: dir, LOG_LEVEL: 'silent' };
  const rotated = await run(CLI, ['keys', 'rotate'], cliEnv);
  expect(rotated.stderr).toBe('');
  expect(rotated.code).toBe(0);
  expect(rotated.stdout).toContain(`${oldKey!.kid} retired`);

  // Restart on the same database and keys folder (a rolling restart, one instance here).
  await first.close();
  second = await startTestService({
    ...env(),
    DATABASE_URL: first.databaseUrl,
    REDIS_PREFIX: first.config.redis.prefix,
  });
  const jwks = await jwksOf(second);
  expect(jwks.keys).toHaveLength(2);
  const [current, retired] = jwks.keys as (JSONWebKeySet['keys'][number] & { status?: string; retiredAt?: string })[];
  expect(current!.kid).not.toBe(oldKey!.kid);
  expect(current!.status).toBeUndefined();
  expect(retired).toMatchObject({ kid: oldKey!.kid, x: oldKey!.x, y: oldKey!.y, status: 'retired' });
  expect(Date.parse(retired!.retiredAt!)).not.toBeNaN();
  expect(JSON.stringify(jwks)).not.toMatch(/"d":/);

  // What the old key signed verifies with the JWKS the service publishes now.
  await expect(compactVerify(oldHead.jws, createLocalJWKSet(jwks))).resolves.toBeDefined();
  // A token issued before the restart (same old key) still verifies until it expires.
  await decide(second, token, { accountId: account, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
  // The first instance may have signed the rotation's own record before it stopped: wait for a head past this decision.
  const decided = Number((await second.sql.query('select seq from audit_head')).rows[0].seq);
  const newHead = await latestHead(second, token, decided - 1);
  expect(decodeProtectedHeader(newHead.jws).kid).toBe(current!.kid);

  // The rotation is on the chain.
  const rows = await auditRows(second.databaseUrl);
  const rotation = rows.find((r) => r.type === 'staff_action' && r.content.includes('"signing_key_rotated"'));
  expect(rotation?.content).toContain(`"retiredKid":"${oldKey!.kid}"`);
  expect(rotation?.content).toContain(`"kid":"${current!.kid}"`);

  const verified = await verifyDb(second.databaseUrl, dir);
  expect(verified.stdout).toMatch(/RESULT: INTACT/);
  expect(verified.code).toBe(0);

  // A second rotation keeps both earlier keys.
  expect((await run(CLI, ['keys', 'rotate'], cliEnv)).code).toBe(0);
  const retiredFile = JSON.parse(await readFile(path.join(dir, 'retired.jwks.json'), 'utf8'));
  expect(retiredFile.keys.map((k: { kid: string }) => k.kid)).toEqual([oldKey!.kid, current!.kid]);
  expect((await run(CLI, ['keys', 'turn'], cliEnv)).code).toBe(2);
}, 60_000);
