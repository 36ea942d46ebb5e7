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
 * A subscriber can check a receipt without the log. The receipt is signed when the act is recorded, before any tree
 * head covers its records: the proofs come in the receipt's proof file (the signed receipt, and one inclusion proof
 * per change against a signed tree head), which the receipt page offers once a tree head covers them and says how to
 * check. `optgate audit verify-proof` checks the proof file as it is (INTACT), the signed receipt alone (INCOMPLETE,
 * exit 3: the proof file is needed), and refuses a proof file changed in any way, or proving another record.
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

async function verifyProof(name: string, content: string) {
  const file = path.join(dir, name);
  await writeFile(file, content);
  return run(CLI, ['audit', 'verify-proof', file, '--jwks', jwksFile], {});
}

it("the receipt's proof file verifies offline, the receipt alone is INCOMPLETE; the page says how", async () => {
  const admin = await adminToken(svc);
  const accountId = await createAccount(svc, admin);
  const put = await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    { purpose: 'ad_targeting', category: 'financial', choice: 'grant' },
  ]);
  const { receiptId } = put.body;
  const [first, second] = put.body.events.map((e: { eventId: string }) => e.eventId) as [string, string];
  const client = new PortalClient(svc.url);
  await client.signIn(await signInUrl(svc, accountId));

  // Within a signing interval, the proof file is there.
  const bundle = await until('the proof file', async () => {
    const r = await client.get(`/receipts/${receiptId}/proof.json`);
    return r.status === 200 ? (JSON.parse(r.body) as { receipt: string; proofs: Record<string, any>[] }) : undefined;
  });
  const jws = (await client.get(`/receipts/${receiptId}/receipt.jws`)).body;
  expect(bundle.receipt).toBe(jws);
  expect(bundle.proofs.map((p) => p.eventId)).toEqual([first, second]);
  for (const [i, p] of bundle.proofs.entries()) {
    expect(p.record).toMatchObject({
      type: 'consent_event',
      accountId,
      data: { eventId: [first, second][i], receiptId },
    });
    expect(p.leafIndex + 1).toBe(p.record.seq);
    expect(payloadOf(p.treeHead)).toMatchObject({ seq: p.treeSize, rootHash: p.rootHash });
  }

  const ok = await verifyProof(`optgate-receipt-${receiptId}.proof.json`, JSON.stringify(bundle));
  expect(ok.stderr).toBe('');
  expect(ok.stdout).toMatch(new RegExp(`receipt\\s+${receiptId} of account ${accountId}, 2 changes: signature valid`));
  expect(ok.stdout).toMatch(/change\s+ad_targeting: financial granted is record \d+/);
  expect(ok.stdout).toMatch(/RESULT: INTACT/);
  expect(ok.code).toBe(0);

  // The signed receipt alone: its signature, and that the proof file is needed.
  const alone = await verifyProof(`optgate-receipt-${receiptId}.jws`, jws);
  expect(alone.stdout).toMatch(/signature valid/);
  expect(alone.stdout).toMatch(/RESULT: INCOMPLETE: proof: .*optgate-receipt-[0-9a-f-]{36}\.proof\.json/);
  expect(alone.code).toBe(3);

  const page = await client.get(`/receipts/${receiptId}`);
  const text = textOf(page.body);
  expect(text).toContain('Proof that these changes are in our audit log');
  expect(text).toContain(`Record numbers ${bundle.proofs.map((p) => p.leafIndex + 1).join(', ')}`);
  expect(text).toContain(`npx optgate audit verify-proof optgate-receipt-${receiptId}.proof.json --jwks jwks.json`);
  expect(page.body).toContain(`href="/receipts/${receiptId}/proof.json" download>Download the proof</a>`);

  // Changed after signing: the receipt's signature fails.
  const [h, , s] = jws.split('.');
  const changes = payloadOf(jws).changes.map((c: object) => ({ ...c, change: 'revoked' }));
  const body = Buffer.from(JSON.stringify({ ...payloadOf(jws), changes })).toString('base64url');
  const forged = await verifyProof('forged.json', JSON.stringify({ ...bundle, receipt: `${h}.${body}.${s}` }));
  expect(forged.stdout).toMatch(/RESULT: TAMPERED: receipt: does not verify/);
  expect(forged.code).toBe(1);

  // A proof's path changed: it no longer leads to the signed root.
  const flipped = structuredClone(bundle);
  const hash = flipped.proofs[1]!.hashes[0] as string;
  flipped.proofs[1]!.hashes[0] = `${hash[0] === '0' ? '1' : '0'}${hash.slice(1)}`;
  const broken = await verifyProof('broken.json', JSON.stringify(flipped));
  expect(broken.stdout).toMatch(/RESULT: TAMPERED: inclusion: the proof does not lead/);
  expect(broken.code).toBe(1);

  // A change without its proof.
  const missing = await verifyProof('missing.json', JSON.stringify({ ...bundle, proofs: bundle.proofs.slice(0, 1) }));
  expect(missing.stdout).toMatch(new RegExp(`RESULT: TAMPERED: proof: no proof for event ${second}`));
  expect(missing.code).toBe(1);

  // Signed by us, but proving another act's record (a later change of the same account): refused.
  const later = await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'financial', choice: 'revoke' },
  ]);
  const other = await until('the later proof file', async () => {
    const r = await client.get(`/receipts/${later.body.receiptId}/proof.json`);
    return r.status === 200 ? JSON.parse(r.body) : undefined;
  });
  const keys = await loadKeys(svc.config.auth, svc.config.env);
  const resigned = await signJws(keys, payloadOf(jws), RECEIPT_TYP);
  expect(await compactVerify(resigned, createLocalJWKSet(JSON.parse(await readFile(jwksFile, 'utf8'))))).toBeTruthy();
  const swapped = {
    receipt: resigned,
    proofs: [bundle.proofs[0], { ...other.proofs[0], eventId: second }],
  };
  const mismatched = await verifyProof('swapped.json', JSON.stringify(swapped));
  expect(mismatched.stdout).toMatch(new RegExp(`the record proven for event ${second} is not this receipt's change`));
  expect(mismatched.code).toBe(1);
}, 60_000);

it("another account's proof file is not found", async () => {
  const admin = await adminToken(svc);
  const [a, b] = [await createAccount(svc, admin), await createAccount(svc, admin)];
  const put = await putConsents(svc, admin, a, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
  const client = new PortalClient(svc.url);
  await client.signIn(await signInUrl(svc, b));
  expect((await client.get(`/receipts/${put.body.receiptId}/proof.json`)).status).toBe(404);
  expect((await call(svc.url, 'GET', '/healthz')).status).toBe(200);
});
