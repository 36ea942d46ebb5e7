import { dropDatabase } from '../support/database';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService, testConfig } from '../support/harness';
import { TcpProxy } from '../support/tcp-proxy';

/**
 * Fail closed: when PostgreSQL is gone, hung or slow, decision endpoints answer 503 problem+json,
 * never an allow. The database is real; a TCP proxy in front of it (test/support/tcp-proxy.ts)
 * injects the network failures, and a lock held by the test makes it slow.
 */

let proxy: TcpProxy;
let svc: TestService;
let admin: string;
let granted: string;
const request = () => ({ accountId: granted, purpose: 'ad_targeting', categories: ['web_browsing_history'] });

beforeAll(async () => {
  proxy = await new TcpProxy(5432).start();
  const database = new URL(testConfig().db.url).pathname.slice(1);
  svc = await startTestService({
    DATABASE_URL: `postgres://127.0.0.1:${proxy.port}/${database}`,
    DB_STATEMENT_TIMEOUT_MS: '800',
  });
  admin = await adminToken(svc);
  granted = await createAccount(svc, admin);
  await putConsents(svc, admin, granted, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
});
afterAll(async () => {
  proxy.heal();
  await svc.close();
  await svc.sql.end();
  await proxy.stop();
  await dropDatabase(svc.databaseUrl.replace(`:${proxy.port}/`, ':5432/'));
});

function expectUnavailable(r: { status: number; headers: Headers; body: any }) {
  expect(r.status).toBe(503);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ type: 'urn:optgate:problem:unavailable', status: 503 });
  expect(r.body.allow).toBeUndefined();
  expect(JSON.stringify(r.body)).not.toMatch(/"allow":\s*true/);
}

const batch = () =>
  call(svc.url, 'POST', '/v1/decisions/batch', {
    token: admin,
    body: { purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds: [granted] },
  });

it('allows while the database answers', async () => {
  expect((await decide(svc, admin, request())).body.allow).toBe(true);
});

it('503 when the database refuses connections', async () => {
  proxy.refuse();
  try {
    expectUnavailable(await decide(svc, admin, request()));
    expectUnavailable(await batch());
    const ready = await call(svc.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.database).toBe('unavailable');
  } finally {
    proxy.heal();
  }
  // And it recovers by itself.
  let r = await decide(svc, admin, request());
  for (let i = 0; i < 20 && r.status !== 200; i++) r = await decide(svc, admin, request());
  expect(r.body.allow).toBe(true);
});

it('503 within the timeout when the database stops answering mid-connection', async () => {
  // Warm the pool so that requests go to connections that then hang.
  await Promise.all(Array.from({ length: 5 }, () => decide(svc, admin, request())));
  proxy.blackhole();
  try {
    const started = Date.now();
    const [single, many] = await Promise.all([decide(svc, admin, request()), batch()]);
    expectUnavailable(single);
    expectUnavailable(many);
    // Bounded by the configured timeouts, not by TCP's minutes.
    expect(Date.now() - started).toBeLessThan(10_000);
  } finally {
    proxy.heal();
  }
});

it('503 when a query is slower than the statement timeout', async () => {
  let r = await decide(svc, admin, request());
  for (let i = 0; i < 20 && r.status !== 200; i++) r = await decide(svc, admin, request());
  expect(r.body.allow).toBe(true);
  const blocker = await svc.sql.connect();
  try {
    await blocker.query('begin');
    // The grant is in the cache by now: the statement that cannot finish is the decision's audit record.
    await blocker.query('select * from audit_head for update');
    expectUnavailable(await decide(svc, admin, request()));
    expectUnavailable(await batch());
  } finally {
    await blocker.query('rollback');
    blocker.release();
  }
  expect((await decide(svc, admin, request())).body.allow).toBe(true);
});
