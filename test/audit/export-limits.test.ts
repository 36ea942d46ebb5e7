import { exportAndWait, until } from '../support/audit';
import { createAccount, decide } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Exports that cannot hurt the service: a bounded number queued or running per client (429
 * beyond it, whatever the concurrency), files that expire and are deleted by a job (the signed
 * manifest stays), and exports run by a worker-only instance while API instances run none.
 */

const week = 7 * 24 * 3_600_000;

describe('the per-client limit (EXPORT_MAX_PENDING=2; no worker runs, so requests stay queued)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ RUN_WORKERS: 'false', EXPORT_MAX_PENDING: '2' });
  });
  afterAll(() => svc.stop());

  it('the third is refused with 429 problem+json and Retry-After; another client is not affected', async () => {
    const alice = await svc.token('audit:read', [], { subject: 'alice' });
    const bob = await svc.token('audit:read', [], { subject: 'bob' });
    const ask = (token: string) => call(svc.url, 'POST', '/v1/audit/exports', { token, body: { format: 'ndjson' } });
    expect((await ask(alice)).status).toBe(202);
    expect((await ask(alice)).status).toBe(202);
    const refused = await ask(alice);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(refused.body).toMatchObject({ status: 429, detail: expect.stringMatching(/2 exports queued or running/) });
    expect((await ask(bob)).status).toBe(202);
    // Refused requests left nothing behind.
    const { rows } = await svc.sql.query(
      `select requested_by, count(*)::int as n from audit_exports group by 1 order by 1`,
    );
    expect(rows).toEqual([
      { requested_by: 'alice', n: 2 },
      { requested_by: 'bob', n: 1 },
    ]);
  });

  it('20 requests at once from one client: exactly 2 accepted', async () => {
    const carol = await svc.token('audit:read', [], { subject: 'carol' });
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        call(svc.url, 'POST', '/v1/audit/exports', { token: carol, body: { format: 'csv' } }),
      ),
    );
    expect(answers.filter((a) => a.status === 202)).toHaveLength(2);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(18);
  });
});

describe('expiry (EXPORT_RETENTION_HOURS default: 7 days)', () => {
  let svc: TestService;
  let now = Date.now();
  beforeAll(async () => {
    svc = await startTestService(
      { RUN_WORKERS: 'true', EXPIRY_SWEEP_INTERVAL_MS: '1000' },
      { clock: () => new Date(now) },
    );
  });
  afterAll(() => svc.stop());

  it('a completed file is kept 7 days, then deleted by the job: 410 for the file, the manifest stays', async () => {
    // A token that outlives the clock's jump.
    const token = await svc.token('audit:read accounts:write decisions', ['ad_targeting'], { ttlSeconds: 30 * 86_400 });
    const account = await createAccount(svc, token);
    await decide(svc, token, { accountId: account, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
    const done = await exportAndWait(svc.url, token, { format: 'ndjson' });
    expect(Date.parse(done.expiresAt) - Date.parse(done.completedAt)).toBe(week);
    const download = (t = token) =>
      fetch(`${svc.url}/v1/audit/exports/${done.exportId}/download`, {
        headers: { authorization: `Bearer ${t}` },
      });
    expect((await download()).status).toBe(200);

    // A day before: still there, through several runs of the job.
    now += week - 86_400_000;
    await new Promise((r) => setTimeout(r, 2500));
    expect((await download()).status).toBe(200);

    now += 86_400_000;
    const expired = await until('expired', async () => {
      const s = await call(svc.url, 'GET', `/v1/audit/exports/${done.exportId}`, { token });
      return s.body.status === 'expired' ? s.body : undefined;
    });
    expect(expired).toMatchObject({ status: 'expired', rows: done.rows, sha256: done.sha256 });
    const gone = await download();
    expect(gone.status).toBe(410);
    expect(gone.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const manifest = await call(svc.url, 'GET', `/v1/audit/exports/${done.exportId}/manifest`, { token });
    expect(manifest.status).toBe(200);
    const { rows } = await svc.sql.query('select count(*)::int as n from audit_export_chunks where export_id = $1', [
      done.exportId,
    ]);
    expect(rows[0].n).toBe(0);
  }, 30_000);
});

describe('a worker-only instance (RUN_WORKERS=only) beside an API instance (RUN_WORKERS=false)', () => {
  let api: TestService;
  afterAll(() => api?.stop());

  it('the worker runs the export the API instance queued, and serves nothing but probes and metrics', async () => {
    api = await startTestService({ RUN_WORKERS: 'false' });
    const worker = await startTestService({
      RUN_WORKERS: 'only',
      DATABASE_URL: api.databaseUrl,
      REDIS_PREFIX: api.config.redis.prefix,
    });
    try {
      const token = await api.token('audit:read decisions accounts:write', ['ad_targeting']);
      await createAccount(api, token);
      const done = await exportAndWait(api.url, token, { format: 'csv' });
      expect(done.status).toBe('completed');
      for (const path of ['/healthz', '/readyz', '/metrics']) expect((await fetch(worker.url + path)).status).toBe(200);
      const decision = await call(worker.url, 'POST', '/v1/decisions', {
        token,
        body: { accountId: 'A1', purpose: 'ad_targeting', categories: ['web_browsing_history'] },
      });
      expect(decision.status).toBe(404);
      expect((await fetch(`${worker.url}/`)).status).toBe(404);
      expect(
        (await fetch(`${worker.url}/metrics`).then((r) => r.text())).match(/^optgate_cache_coherent 0$/m),
      ).not.toBe(null);
    } finally {
      await worker.close();
      await worker.sql.end();
    }
  }, 30_000);
});
