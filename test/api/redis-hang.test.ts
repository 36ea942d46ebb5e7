import { signInUrl } from '../support/browser';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { PrivateRedis } from '../support/redis-server';

/**
 * A hung Redis (SIGSTOP: connections open, nothing answers). This test runs its own redis-server
 * so that pausing it touches no other test. Every Redis command has a bounded time: what needs
 * Redis (sign-in, portal pages) answers a prompt 503; decisions, which do not, go on; readiness
 * reports Redis and stays ready.
 */

let redis: PrivateRedis;
let svc: TestService;

beforeAll(async () => {
  redis = await new PrivateRedis().start();
  svc = await startTestService({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '500' });
});
afterAll(async () => {
  await svc.stop();
  await redis.stop();
});

const timed = async <T>(work: Promise<T>) => {
  const started = Date.now();
  const value = await work;
  return { value, ms: Date.now() - started };
};

it('while Redis hangs: sign-in is a prompt 503 page, decisions are answered, readiness stays ready', async () => {
  const admin = await adminToken(svc);
  const id = await createAccount(svc, admin);
  await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
  const link = await signInUrl(svc, id);
  redis.pause();
  try {
    const login = await timed(fetch(link, { redirect: 'manual', headers: { accept: 'text/html' } }));
    expect(login.value.status).toBe(503);
    expect(await login.value.text()).toContain('We cannot do this right now');
    expect(login.ms).toBeLessThan(3000);

    const page = await timed(fetch(`${svc.url}/choices`, { headers: { cookie: `optgate_session=${'x'.repeat(43)}` } }));
    expect(page.value.status).toBe(503);
    expect(page.ms).toBeLessThan(3000);

    const allowed = await decide(svc, admin, { accountId: id, purpose: 'ad_targeting', categories: ['name'] });
    expect(allowed.body.allow).toBe(true);

    const ready = await timed(call(svc.url, 'GET', '/readyz'));
    expect(ready.value.status).toBe(200);
    expect(ready.value.body.checks).toEqual({ database: 'ok', redis: 'unavailable' });
    expect(ready.ms).toBeLessThan(3000);
  } finally {
    redis.resume();
  }
  // Once Redis answers again, so does sign-in, with a fresh link.
  const again = await fetch(await signInUrl(svc, id), { redirect: 'manual' });
  expect(again.status).toBe(303);
}, 30_000);
