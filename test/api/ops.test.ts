import { dropDatabase } from '../support/database';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

let svc: TestService;

beforeAll(async () => {
  svc = await startTestService();
});
afterAll(() => svc.stop());

it('GET /healthz and /readyz', async () => {
  expect((await call(svc.url, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
  // Ready needs PostgreSQL only; Redis is reported as it is, and may still be connecting just after the start.
  let ready = await call(svc.url, 'GET', '/readyz');
  expect(ready.status).toBe(200);
  for (let i = 0; i < 50 && ready.body.checks.redis !== 'ok'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    ready = await call(svc.url, 'GET', '/readyz');
  }
  expect(ready.body).toEqual({ status: 'ready', checks: { database: 'ok', redis: 'ok' } });
});

it('GET /v1/notices lists every version with its hash, without auth', async () => {
  const r = await call(svc.url, 'GET', '/v1/notices');
  expect(r.status).toBe(200);
  expect(r.body.current).toBe('v3');
  expect(r.body.versions.map((v: { version: string }) => v.version)).toEqual(['v1', 'v2', 'v3']);
  expect(r.body.versions[1]).toMatchObject({
    version: 'v2',
    effectiveAt: '2023-03-01T00:00:00.000Z',
    material: true,
    materialFor: ['data_sale', 'third_party_disclosure'],
  });
  for (const v of r.body.versions) expect(v.sha256).toMatch(/^[0-9a-f]{64}$/);
  const text = await call(svc.url, 'GET', '/v1/notices/v3');
  expect(text.body.text).toMatch(/Maine/);
  expect((await call(svc.url, 'GET', '/v1/notices/v99')).status).toBe(404);
});

it('GET /.well-known/jwks.json serves only public key material', async () => {
  const r = await call(svc.url, 'GET', '/.well-known/jwks.json');
  expect(r.body.keys).toHaveLength(1);
  expect(r.body.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', kid: expect.any(String) });
  expect(r.body.keys[0].d).toBeUndefined();
});

it('GET /metrics counts decisions by purpose, outcome and reason, with no account ids', async () => {
  const admin = await adminToken(svc);
  const id = await createAccount(svc, admin);
  await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
  await decide(svc, admin, { accountId: id, purpose: 'ad_targeting', categories: ['name'] });
  await decide(svc, admin, { accountId: id, purpose: 'data_sale', recipient: 'acme-ads', categories: ['name'] });
  const r = await call(svc.url, 'GET', '/metrics');
  expect(r.status).toBe(200);
  expect(r.body).toMatch(
    /optgate_decisions_total\{purpose="ad_targeting",outcome="allow",reason="consent_granted"\} 1/,
  );
  expect(r.body).toMatch(/optgate_decisions_total\{purpose="data_sale",outcome="deny",reason="no_consent"\} 1/);
  expect(r.body).toMatch(/optgate_decision_duration_seconds_bucket\{le="0.005",endpoint="single"\}/);
  expect(r.body).toMatch(/optgate_consent_events_total\{kind="granted",channel="call_center"\} 1/);
  expect(r.body).toMatch(/optgate_process_cpu_seconds_total/);
  expect(r.body).toMatch(/optgate_audit_pending_records 0/);
  expect(r.body).toMatch(/# TYPE optgate_queue_jobs gauge/);
  expect(r.body).not.toContain(id);
});

it('shuts down gracefully: a request in flight completes, new connections are refused', async () => {
  const other = await startTestService();
  const admin = await adminToken(other);
  const id = await createAccount(other, admin);
  const blocker = await other.sql.connect();
  await blocker.query('begin');
  await blocker.query('lock table consent_state in access exclusive mode');
  // This decision waits on the lock while the service is asked to stop.
  const inFlight = decide(other, admin, {
    accountId: id,
    purpose: 'product_analytics',
    categories: ['other_customer_info'],
  });
  await new Promise((r) => setTimeout(r, 200));
  const closed = other.close();
  await new Promise((r) => setTimeout(r, 100));
  await blocker.query('rollback');
  blocker.release();
  const r = await inFlight;
  expect(r.status).toBe(200);
  expect(r.body.allow).toBe(true);
  await closed;
  await expect(fetch(`${other.url}/healthz`)).rejects.toThrow();
  await other.sql.end();
  await dropDatabase(other.databaseUrl);
});

it('decisions do not depend on Redis: readiness reports it down but stays ready, decisions go on', async () => {
  // Workers on: their schedulers wait for Redis without holding up the start.
  const noRedis = await startTestService({ REDIS_URL: 'redis://127.0.0.1:1', RUN_WORKERS: 'true' });
  try {
    const ready = await call(noRedis.url, 'GET', '/readyz');
    // Ready: what decisions need (PostgreSQL) answers; Redis is reported, not required.
    expect(ready.status).toBe(200);
    // A scrape answers too, without the queue depths it cannot read.
    expect((await call(noRedis.url, 'GET', '/metrics')).status).toBe(200);
    expect(ready.body.checks).toEqual({ database: 'ok', redis: 'unavailable' });
    const admin = await adminToken(noRedis);
    const id = await createAccount(noRedis, admin);
    expect(
      (await decide(noRedis, admin, { accountId: id, purpose: 'billing', categories: ['billing_info'] })).body.allow,
    ).toBe(true);
    // An export needs its queue: a prompt 503, and the export is marked failed rather than left queued for ever.
    const exported = await call(noRedis.url, 'POST', '/v1/audit/exports', { token: admin, body: { format: 'ndjson' } });
    expect(exported.status).toBe(503);
    expect(exported.headers.get('retry-after')).toBe('5');
    const { rows } = await noRedis.sql.query('select status from audit_exports');
    expect(rows).toEqual([{ status: 'failed' }]);
  } finally {
    await noRedis.stop();
  }
});
