import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The BullMQ sweep (real Redis) appends an `expired` event for each lapsed opt-in, once, even with two instances
 * running it.
 */

let a: TestService;
let b: TestService;
let now = Date.now();
const clock = () => new Date(now);

beforeAll(async () => {
  a = await startTestService({ RUN_WORKERS: 'true', EXPIRY_SWEEP_INTERVAL_MS: '1000' }, { clock });
  // A second instance on the same database and Redis prefix, as in a scaled-out deployment.
  b = await startTestService(
    {
      RUN_WORKERS: 'true',
      EXPIRY_SWEEP_INTERVAL_MS: '1000',
      DATABASE_URL: a.databaseUrl,
      REDIS_PREFIX: a.config.redis.prefix,
    },
    { clock },
  );
});
afterAll(async () => {
  await b.close();
  await b.sql.end();
  await a.stop();
});

it('marks lapsed opt-ins expired exactly once', async () => {
  const admin = await adminToken(a);
  const ids = await Promise.all([1, 2, 3].map(() => createAccount(a, admin)));
  for (const id of ids) {
    const r = await putConsents(a, admin, id, [
      { purpose: 'ad_targeting', category: 'name', choice: 'grant', expiresAt: new Date(now + 60_000).toISOString() },
    ]);
    expect(r.status).toBe(200);
  }
  now += 60_000;

  const expiredEvents = async () =>
    (await a.sql.query("select account_id from consent_events where kind = 'expired' and account_id = any($1)", [ids]))
      .rows.length;
  const deadline = Date.now() + 15_000;
  while ((await expiredEvents()) < ids.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  expect(await expiredEvents()).toBe(ids.length);
  // Another tick or two must not add more.
  await new Promise((r) => setTimeout(r, 2500));
  expect(await expiredEvents()).toBe(ids.length);

  const state = await call(b.url, 'GET', `/v1/accounts/${ids[0]}/consents`, { token: admin });
  expect(state.body.consents).toEqual([expect.objectContaining({ category: 'name', state: 'expired' })]);
  const d = await decide(b, admin, { accountId: ids[0], purpose: 'ad_targeting', categories: ['name'] });
  expect(d.body).toMatchObject({ allow: false, results: [{ reason: 'consent_expired' }] });
});
