import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { compactVerify, createLocalJWKSet } from 'jose';
import { RECEIPT_TYP } from '../../src/audit';
import { loadKeys } from '../../src/platform/auth/keys';
import { signJws } from '../../src/platform/auth/signing';
import { deleteRedisPrefix, tempDir, until } from '../support/audit';
import { PortalClient, signInUrl, textOf } from '../support/browser';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { CLI, run } from '../support/processes';

/**
 * A subscriber can check one change without the log: the receipt carries the inclusion proof of
 * its event's record against a signed tree head, the receipt page says how to check it, and
 * `optgate audit verify-proof` checks the downloaded receipt file as it is. A receipt whose proof
 * is another record's, or whose content was changed, is refused.
 */

let svc: TestService;
let dir: string;
let jwksFile: string;

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '200' });
  dir = await tempDir();
  jwksFile = path.join(dir, 'jwks.json');
  await writeFile(jwksFile, await (await fetch(`${svc.url}/.well-known/jwks.json`)).text());
});
afterAll(async () => {
  await svc.stop();
  await deleteRedisPrefix(svc.config.redis.prefix);
  await rm(dir, { recursive: true, force: true });
});

const payloadOf = (jws: string) => JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString());

it('the downloaded receipt carries its proof and verifies offline; the page says how', async () => {
  const admin = await adminToken(svc);
  const accountId = await createAccount(svc, admin);
  const put = await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    { purpose: 'ad_targeting', category: 'financial', choice: 'grant' },
  ]);
  const [first, second] = put.body.events.map((e: { eventId: string }) => e.eventId) as [string, string];
  const client = new PortalClient(svc.url);
  await client.signIn(await signInUrl(svc, accountId));

  // Within a signing interval, the receipt carries the proof.
  const jws = await until('a receipt with its proof', async () => {
    const r = await client.get(`/receipts/${first}/receipt.jws`);
    return r.status === 200 && payloadOf(r.body).proof ? r.body.trim() : undefined;
  });
  const { proof } = payloadOf(jws);
  expect(proof.record).toMatchObject({ type: 'consent_event', accountId, data: { eventId: first } });
  expect(proof.leafIndex + 1).toBe(proof.record.seq);
  expect(payloadOf(proof.treeHead)).toMatchObject({ seq: proof.treeSize, rootHash: proof.rootHash });

  const file = path.join(dir, `optgate-receipt-${first}.jws`);
  await writeFile(file, jws);
  const ok = await run(CLI, ['audit', 'verify-proof', file, '--jwks', jwksFile], {});
  expect(ok.stderr).toBe('');
  expect(ok.stdout).toMatch(/receipt\s+event .* signature valid/);
  expect(ok.stdout).toMatch(/RESULT: INTACT/);
  expect(ok.code).toBe(0);

  const page = textOf((await client.get(`/receipts/${first}`)).body);
  expect(page).toContain('Proof that this change is in our audit log');
  expect(page).toContain(`Record number ${proof.leafIndex + 1}`);
  expect(page).toContain(`npx optgate audit verify-proof optgate-receipt-${first}.jws --jwks jwks.json`);

  // A receipt changed after signing: its signature fails.
  const [h, , s] = jws.split('.');
  const body = Buffer.from(JSON.stringify({ ...payloadOf(jws), change: 'revoked' })).toString('base64url');
  const changed = `${h}.${body}.${s}`;
  await writeFile(file, changed);
  const forged = await run(CLI, ['audit', 'verify-proof', file, '--jwks', jwksFile], {});
  expect(forged.stdout).toMatch(/RESULT: TAMPERED/);
  expect(forged.code).toBe(1);

  // Signed, but proving another record (the other event's): refused.
  const other = await until('the second receipt with its proof', async () => {
    const r = await client.get(`/receipts/${second}/receipt.jws`);
    return r.status === 200 && payloadOf(r.body).proof ? r.body.trim() : undefined;
  });
  const keys = await loadKeys(svc.config.auth, svc.config.env);
  const swapped = await signJws(keys, { ...payloadOf(jws), proof: payloadOf(other).proof }, RECEIPT_TYP);
  expect(await compactVerify(swapped, createLocalJWKSet(JSON.parse(await readFile(jwksFile, 'utf8'))))).toBeTruthy();
  await writeFile(file, swapped);
  const mismatched = await run(CLI, ['audit', 'verify-proof', file, '--jwks', jwksFile], {});
  expect(mismatched.stdout).toMatch(/the proven record is not this receipt's event/);
  expect(mismatched.code).toBe(1);
}, 60_000);

it("another account's receipt is still not found", async () => {
  const admin = await adminToken(svc);
  const [a, b] = [await createAccount(svc, admin), await createAccount(svc, admin)];
  const put = await putConsents(svc, admin, a, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
  const client = new PortalClient(svc.url);
  await client.signIn(await signInUrl(svc, b));
  expect((await client.get(`/receipts/${put.body.events[0].eventId}/receipt.jws`)).status).toBe(404);
  expect((await call(svc.url, 'GET', '/healthz')).status).toBe(200);
});
