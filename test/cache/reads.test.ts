import { metricValue, untilCoherent } from '../support/cluster';
import { adminToken, createAccount, decide, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Misses read PostgreSQL together: single decisions that miss while reads are in flight share the
 * next read (under load, one query serves many), and each still gets its own account's answer. A batch reads
 * its misses in one query. A revocation made while such a shared read is in flight is never kept.
 */

let svc: TestService;
let admin: string;

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
  await untilCoherent([svc]);
});
afterAll(() => svc.stop());

const body = (accountId: string) => ({
  accountId,
  purpose: 'ad_targeting',
  categories: ['web_browsing_history'],
});

it('200 concurrent single decisions about uncached accounts: right answers, far fewer reads than misses', async () => {
  const ids = Array.from({ length: 200 }, () => uniqueId());
  const res = await call(svc.url, 'POST', '/v1/accounts', {
    token: admin,
    body: { accounts: ids.map((accountId, i) => ({ accountId, status: i % 10 === 9 ? 'closed' : 'active' })) },
  });
  expect(res.status).toBe(200);
  const granted = ids.filter((_, i) => i % 3 === 0 && i % 10 !== 9);
  for (const id of granted) {
    const r = await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
    expect(r.status).toBe(200);
  }
  // Some ids that are not accounts at all, among them.
  const asked = [...ids, ...Array.from({ length: 20 }, () => uniqueId())];
  const readsBefore = await metricValue(svc, 'optgate_cache_reads_total');
  const missesBefore = await metricValue(svc, 'optgate_cache_requests_total', 'miss');
  // PostgreSQL is slow for a moment (a lock holds the first reads): the misses that arrive meanwhile wait and share.
  const locker = await svc.sql.connect();
  await locker.query('begin');
  await locker.query('lock table consent_state in access exclusive mode');
  const pending = Promise.all(asked.map((id) => decide(svc, admin, body(id))));
  while ((await metricValue(svc, 'optgate_cache_requests_total', 'miss')) - missesBefore < asked.length) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await locker.query('commit');
  locker.release();
  const answers = await pending;
  const reads = (await metricValue(svc, 'optgate_cache_reads_total')) - readsBefore;
  const misses = (await metricValue(svc, 'optgate_cache_requests_total', 'miss')) - missesBefore;

  answers.forEach((a, i) => {
    const id = asked[i]!;
    expect(a.status).toBe(200);
    expect(a.body.accountId).toBe(id);
    const reason = a.body.results[0].reason;
    if (!ids.includes(id)) expect(reason).toBe('unknown_account');
    else if (ids.indexOf(id) % 10 === 9) expect(reason).toBe('account_closed');
    else if (granted.includes(id)) expect(reason).toBe('consent_granted');
    else expect(reason).toBe('no_consent');
  });
  expect(misses).toBe(asked.length);
  // The reads in flight when the lock was taken, then one shared query (at most 1,000 accounts each) for the rest.
  expect(reads).toBeGreaterThan(0);
  expect(reads).toBeLessThanOrEqual(4 + 1);

  // All of them are cached now: asking again reads nothing.
  const readsAgain = await metricValue(svc, 'optgate_cache_reads_total');
  const again = await Promise.all(asked.map((id) => decide(svc, admin, body(id))));
  expect(again.map((a) => a.body.allow)).toEqual(answers.map((a) => a.body.allow));
  expect(await metricValue(svc, 'optgate_cache_reads_total')).toBe(readsAgain);
});

it('a revocation during shared reads: no decision after it is answered allows, on any account', async () => {
  const ids = await Promise.all(Array.from({ length: 30 }, () => createAccount(svc, admin)));
  for (const id of ids) {
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
  }
  for (let round = 0; round < 20; round++) {
    const target = ids[round % ids.length]!;
    // Misses and hits in flight on every account while the target is revoked (and the cache dropped meanwhile).
    const inFlight = Promise.all(ids.map((id) => decide(svc, admin, body(id))));
    const revoked = await putConsents(svc, admin, target, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'revoke' },
    ]);
    expect(revoked.status).toBe(200);
    const after = await decide(svc, admin, body(target));
    expect(after.body.allow).toBe(false);
    await inFlight;
    expect((await decide(svc, admin, body(target))).body.allow).toBe(false);
    await putConsents(svc, admin, target, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
  }
}, 60_000);
