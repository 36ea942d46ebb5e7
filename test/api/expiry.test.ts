import { createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Expiry is exact, through the whole service: allow at expiresAt − 1 ms, deny at expiresAt. The clock is injected,
 * and the service checks tokens against it too: the test's token outlives the hour it jumps.
 */

let svc: TestService;
let admin: string;
let now = Date.now();

beforeAll(async () => {
  svc = await startTestService({}, { clock: () => new Date(now) });
  admin = await svc.token('decisions consents:write accounts:write', ['ad_targeting'], { ttlSeconds: 3 * 3600 });
});
afterAll(() => svc.stop());

it('allows at expiresAt − 1 ms and denies at expiresAt', async () => {
  const id = await createAccount(svc, admin);
  const expiresAt = new Date(Math.ceil(now / 1000) * 1000 + 3_600_000);
  const put = await putConsents(svc, admin, id, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant', expiresAt: expiresAt.toISOString() },
  ]);
  expect(put.status).toBe(200);
  const body = { accountId: id, purpose: 'ad_targeting', categories: ['web_browsing_history'] };

  now = expiresAt.getTime() - 1;
  const before = await decide(svc, admin, body);
  expect(before.body).toMatchObject({ allow: true, validUntil: expiresAt.toISOString() });

  now = expiresAt.getTime();
  const at = await decide(svc, admin, body);
  expect(at.body).toMatchObject({ allow: false, results: [{ reason: 'consent_expired' }] });

  const state = await call(svc.url, 'GET', `/v1/accounts/${id}/consents`, { token: admin });
  expect(state.body.consents[0]).toMatchObject({ category: 'web_browsing_history', state: 'expired' });
});
