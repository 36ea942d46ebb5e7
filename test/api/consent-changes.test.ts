import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

let svc: TestService;
let admin: string;

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

describe('GET /v1/consent-changes', () => {
  it('lists consent events in commit order, resumable from the last seq seen, never missing one', async () => {
    const ids = await Promise.all([1, 2, 3].map(() => createAccount(svc, admin)));
    // Concurrent writers on several accounts.
    await Promise.all(
      ids.map((id) => putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }])),
    );
    const reader = await svc.token('decisions');
    const seen: { seq: number; accountId: string; kind: string }[] = [];
    let after = 0;
    for (;;) {
      const r = await call(svc.url, 'GET', `/v1/consent-changes?after=${after}&limit=2`, { token: reader });
      expect(r.status).toBe(200);
      seen.push(...r.body.changes);
      if (!r.body.changes.length) break;
      after = r.body.next;
    }
    expect(seen.map((c) => c.accountId).sort()).toEqual([...ids].sort());
    const seqs = seen.map((c) => c.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

    // A revocation after that point is the next thing the reader sees.
    await putConsents(svc, admin, ids[1]!, [{ purpose: 'ad_targeting', category: 'name', choice: 'revoke' }]);
    const next = await call(svc.url, 'GET', `/v1/consent-changes?after=${after}`, { token: reader });
    expect(next.body.changes).toEqual([
      expect.objectContaining({
        accountId: ids[1],
        kind: 'revoked',
        purpose: 'ad_targeting',
        category: 'name',
        channel: 'call_center',
        eventId: expect.any(String),
      }),
    ]);
    expect(next.body.changes[0].seq).toBeGreaterThan(after);
  });

  it('needs the decisions scope and a valid cursor', async () => {
    expect((await call(svc.url, 'GET', '/v1/consent-changes')).status).toBe(401);
    expect((await call(svc.url, 'GET', '/v1/consent-changes', { token: await svc.token('audit:read') })).status).toBe(
      403,
    );
    expect((await call(svc.url, 'GET', '/v1/consent-changes?after=-1', { token: admin })).status).toBe(422);
    expect((await call(svc.url, 'GET', '/v1/consent-changes?limit=5000', { token: admin })).status).toBe(422);
  });
});

it('POST /v1/audit/exports is accepted: 202 with an export id (the route reads its own schema)', async () => {
  const r = await call(svc.url, 'POST', '/v1/audit/exports', {
    token: await svc.token('audit:read'),
    body: { format: 'csv' },
  });
  expect(r.status).toBe(202);
  expect(r.body.exportId).toMatch(/^[0-9a-f-]{36}$/);
  expect(r.headers.get('location')).toBe(`/v1/audit/exports/${r.body.exportId}`);
});
