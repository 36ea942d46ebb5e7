import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { processEnv, processToken } from '../support/audit';
import { metricValue, startCluster, untilCoherent } from '../support/cluster';
import { dropDatabase } from '../support/database';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { finished, freePort, startProcess } from '../support/processes';
import { PrivateRedis } from '../support/redis-server';

/**
 * Each failure case of the cache protocol (docs/cache.md): an instance paused while it holds a
 * lease and a grant; Redis killed; Redis paused; a writer that dies between its commit and its
 * announcement. In each: no stale allow, no hang, and the cache comes back when the failure ends.
 * Redis is a private redis-server here, so that killing or pausing it touches no other test.
 */

const LEASE_MS = 1000;
const grant = (category = 'web_browsing_history') => ({ purpose: 'ad_targeting', category, choice: 'grant' as const });
const revoke = (category = 'web_browsing_history') => ({
  purpose: 'ad_targeting',
  category,
  choice: 'revoke' as const,
});
const ask = (accountId: string) => ({ accountId, purpose: 'ad_targeting', categories: ['web_browsing_history'] });

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work;
  return { value, ms: performance.now() - started };
}

describe('an instance paused (SIGSTOP) while it holds a lease and a cached grant', () => {
  it('the revocation waits its lease out, then the paused instance, resumed, never allows', async () => {
    const env = processEnv({ CACHE_LEASE_MS: String(LEASE_MS), LOG_LEVEL: 'error' });
    const [portA, portB] = [await freePort(), await freePort()];
    const a = await startProcess(env, portA);
    const b = await startProcess(env, portB);
    const [urlA, urlB] = [`http://127.0.0.1:${portA}`, `http://127.0.0.1:${portB}`];
    try {
      const token = await processToken(env, 'decisions consents:write accounts:write', ['ad_targeting']);
      const id = `A-${randomUUID().slice(0, 8)}`;
      await call(urlA, 'POST', '/v1/accounts', { token, body: { accounts: [{ accountId: id, status: 'active' }] } });
      const consents = (choice: object) =>
        call(urlA, 'PUT', `/v1/accounts/${id}/consents`, {
          token,
          body: { channel: 'api', actor: 'subscriber', noticeVersion: 'v3', affirmative: true, changes: [choice] },
        });
      expect((await consents(grant())).status).toBe(200);
      // B answers from its cache (its lease held): the grant is in it.
      await untilCoherent([{ url: urlB }]);
      for (let i = 0; i < 3; i++) {
        expect((await call(urlB, 'POST', '/v1/decisions', { token, body: ask(id) })).body.allow).toBe(true);
      }

      expect(await metricValue({ url: urlB }, 'optgate_cache_requests_total', 'hit')).toBeGreaterThan(0);
      b.kill('SIGSTOP');
      const revoked = await timed(consents(revoke()));
      expect(revoked.value.status).toBe(200);
      // B could not acknowledge: A answered once B's lease could no longer be in use, not before, not much after.
      expect(revoked.ms).toBeGreaterThan(LEASE_MS / 4);
      expect(revoked.ms).toBeLessThan(LEASE_MS + 1500);
      await new Promise((r) => setTimeout(r, LEASE_MS));
      b.kill('SIGCONT');

      const afterResume = await call(urlB, 'POST', '/v1/decisions', { token, body: ask(id) });
      expect(afterResume.status).toBe(200);
      expect(afterResume.body.allow).toBe(false);
      expect(afterResume.body.results[0].reason).toBe('consent_revoked');
    } finally {
      b.kill('SIGCONT');
      for (const p of [a, b]) p.kill('SIGTERM');
      await Promise.all([finished(a), finished(b)]);
      await dropDatabase(env.DATABASE_URL);
    }
  }, 60_000);
});

describe('Redis fails under two instances', () => {
  let redis: PrivateRedis;
  let cluster: Awaited<ReturnType<typeof startCluster>>;
  let a: TestService;
  let b: TestService;
  let admin: string;

  beforeAll(async () => {
    redis = await new PrivateRedis().start();
    cluster = await startCluster(2, {
      REDIS_URL: redis.url,
      CACHE_LEASE_MS: String(LEASE_MS),
      REDIS_COMMAND_TIMEOUT_MS: '300',
    });
    [a, b] = cluster.instances as [TestService, TestService];
    admin = await adminToken(a);
  });
  afterAll(async () => {
    redis.resume();
    await cluster.stop();
    await redis.stop();
  });

  async function scenario(fail: () => Promise<void> | void, recover: () => Promise<void> | void) {
    await untilCoherent([a, b]);
    const id = await createAccount(a, admin);
    expect((await putConsents(a, admin, id, [grant()])).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await decide(b, admin, ask(id))).body.allow).toBe(true);
    const hits = await metricValue(b, 'optgate_cache_requests_total', 'hit');
    expect(hits).toBeGreaterThan(0);

    await fail();
    // The revocation cannot be announced: it is answered once every lease has run out, within a lease and a bit.
    const revoked = await timed(putConsents(a, admin, id, [revoke()]));
    expect(revoked.value.status).toBe(200);
    expect(revoked.ms).toBeLessThan(LEASE_MS + 1500);
    // B has stopped using its cache: it reads PostgreSQL, promptly, and denies.
    const denied = await timed(decide(b, admin, ask(id)));
    expect(denied.value.body.allow).toBe(false);
    expect(denied.ms).toBeLessThan(1000);
    expect(await metricValue(b, 'optgate_cache_coherent')).toBe(0);
    expect(await metricValue(b, 'optgate_cache_requests_total', 'bypass')).toBeGreaterThan(0);

    await recover();
    // The cache comes back by itself, and serves the grant again after a new one.
    await untilCoherent([a, b], 15_000);
    expect((await putConsents(a, admin, id, [grant()])).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await decide(b, admin, ask(id))).body.allow).toBe(true);
    expect(await metricValue(b, 'optgate_cache_requests_total', 'hit')).toBeGreaterThan(hits);
  }

  it('killed (SIGKILL), then started again', async () => {
    await scenario(
      () => redis.kill(),
      () => redis.start().then(() => undefined),
    );
  }, 60_000);

  it('paused (SIGSTOP), then resumed', async () => {
    await scenario(
      async () => {
        redis.pause();
        // Renewals time out (the command timeout): give the instances a lease to notice.
        await new Promise((r) => setTimeout(r, LEASE_MS));
      },
      () => redis.resume(),
    );
  }, 60_000);
});

describe('a writer that dies between its commit and its announcement', () => {
  let cluster: Awaited<ReturnType<typeof startCluster>>;

  beforeAll(async () => {
    cluster = await startCluster(2, { CACHE_LEASE_MS: String(LEASE_MS) });
  });
  afterAll(() => cluster.stop());

  it('every other instance catches up from PostgreSQL within a quarter lease; a restarted one starts ' +
    'empty', async () => {
    const [a, b] = cluster.instances as [TestService, TestService];
    const admin = await adminToken(a);
    await untilCoherent([a, b]);
    const id = await createAccount(a, admin);
    expect((await putConsents(a, admin, id, [grant()])).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await decide(b, admin, ask(id))).body.allow).toBe(true);

    // The revocation, committed as ConsentService.record's transaction commits it (state, event, change log), by a
    // writer that never gets to announce it: nobody publishes, nobody waits for acknowledgements.
    const grantRow = await a.sql.query('select consent_id from consent_state where account_id = $1', [id]);
    const client = await a.sql.connect();
    try {
      await client.query('begin');
      const eventId = randomUUID();
      await client.query(
        `insert into consent_events (event_id, account_id, purpose, category, kind, actor_type, channel,
           notice_version, notice_sha256, occurred_at)
         values ($1, $2, 'ad_targeting', 'web_browsing_history', 'revoked', 'subscriber', 'api', 'v3', 'x', now())`,
        [eventId, id],
      );
      await client.query(
        `update consent_state set state = 'revoked', consent_id = $2, revoked_at = now(), updated_at = now()
         where account_id = $1 and consent_id = $3`,
        [id, eventId, grantRow.rows[0].consent_id],
      );
      await client.query('insert into account_changes (account_id) values ($1)', [id]);
      await client.query('commit');
    } finally {
      client.release();
    }
    const committed = performance.now();
    let deniedAfter: number | undefined;
    while (performance.now() - committed < 3 * LEASE_MS) {
      if ((await decide(b, admin, ask(id))).body.allow === false) {
        deniedAfter = performance.now() - committed;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(deniedAfter).toBeDefined();
    expect(deniedAfter!).toBeLessThan(LEASE_MS / 4 + 500);

    // A restarted writer holds nothing stale: it starts with an empty cache.
    const restarted = await startTestService({
      DATABASE_URL: a.databaseUrl,
      REDIS_PREFIX: a.config.redis.prefix,
      CACHE_LEASE_MS: String(LEASE_MS),
    });
    try {
      expect((await decide(restarted, admin, ask(id))).body.allow).toBe(false);
    } finally {
      await restarted.close();
      await restarted.sql.end();
    }
  }, 60_000);
});
