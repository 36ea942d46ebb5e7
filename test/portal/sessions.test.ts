import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { PortalClient, signInUrl, textOf } from '../support/browser';
import { adminToken, createAccount } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/** Session limits that need a service of their own: the idle timeout, the sign-in rate limit, the Secure cookie. */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('idle timeout (PORTAL_IDLE_SECONDS=2)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ PORTAL_IDLE_SECONDS: '2' });
  });
  afterAll(() => svc.stop());

  it('activity keeps the session alive; two idle seconds end it, on the server', async () => {
    const accountId = await createAccount(svc, await adminToken(svc));
    const client = new PortalClient(svc.url);
    await client.signIn(await signInUrl(svc, accountId));
    const csrf = await client.csrf();
    // Each request restarts the idle timer: 3 seconds of activity in steps shorter than the timeout.
    for (let i = 0; i < 3; i++) {
      await sleep(1000);
      expect((await client.get('/history')).status).toBe(200);
    }
    await sleep(2300);
    const page = await client.get('/choices');
    expect(page.status).toBe(303);
    expect(page.location).toBe('/?ended=1');
    expect(textOf((await client.get(page.location!)).body)).toContain('Your session ended. Sign in again to continue.');
    // A form posted after the timeout is refused, even with the right token, and records nothing.
    const post = await client.post('/choices', { _csrf: csrf, noticeVersion: 'v3', action: 'allow_all' });
    expect(post.status).toBe(401);
    expect(textOf(post.body)).toContain('Your session ended.');
    const { rows } = await svc.sql.query('select count(*)::int as n from consent_events where account_id = $1', [
      accountId,
    ]);
    expect(rows[0].n).toBe(0);
  }, 20_000);
});

describe('maximum session age (PORTAL_SESSION_MAX_HOURS, default 8)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(() => svc.stop());

  it('a session older than the maximum ends, however active it was', async () => {
    const accountId = await createAccount(svc, await adminToken(svc));
    const client = new PortalClient(svc.url);
    await client.signIn(await signInUrl(svc, accountId));
    expect((await client.get('/choices')).status).toBe(200);
    // Age the session in Redis: it was created nine hours ago (and stayed active since).
    const id = client.cookie!.split('=')[1]!;
    const key = `${svc.config.redis.prefix}:portal:session:${createHash('sha256').update(id).digest('hex')}`;
    const redis = new Redis(svc.config.redis.url);
    try {
      const stored = JSON.parse((await redis.get(key))!);
      // Redis holds the id only hashed; the cookie value itself is not stored.
      expect(JSON.stringify(stored)).not.toContain(id);
      await redis.set(key, JSON.stringify({ ...stored, createdAt: Date.now() - 9 * 3_600_000 }), 'PX', 60_000);
      const r = await client.get('/choices');
      expect(r.status).toBe(303);
      expect(r.location).toBe('/?ended=1');
      expect(await redis.exists(key)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });
});

describe('sign-in rate limit (PORTAL_SIGNIN_PER_MINUTE=3) and a Secure cookie (PORTAL_COOKIE_SECURE=true)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ PORTAL_SIGNIN_PER_MINUTE: '3', PORTAL_COOKIE_SECURE: 'true' });
  });
  afterAll(() => svc.stop());

  it('past the limit, sign-in answers 429 even for a valid link, and says to wait', async () => {
    const accountId = await createAccount(svc, await adminToken(svc));
    // Failed attempts count: guessing is what the limit is for.
    expect((await new PortalClient(svc.url).get('/login?token=guess.one.x')).status).toBe(401);
    expect((await new PortalClient(svc.url).get('/login?token=guess.two.x')).status).toBe(401);
    const ok = new PortalClient(svc.url);
    await ok.signIn(await signInUrl(svc, accountId));
    expect(ok.setCookies[0]).toMatch(/; Secure/);
    expect(ok.setCookies[0]).toMatch(/; HttpOnly/);
    expect(ok.setCookies[0]).toMatch(/; SameSite=Lax/);

    const limited = new PortalClient(svc.url);
    const url = await signInUrl(svc, accountId);
    const r = await limited.get(url);
    expect(r.status).toBe(429);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    expect(textOf(r.body)).toContain('Too many sign-in attempts. Wait a minute and try again.');
    expect(limited.setCookies).toEqual([]);
    expect((await limited.get('/login?token=guess.three.x')).status).toBe(429);
    // The limit is on signing in: a signed-in subscriber carries on.
    expect((await ok.get('/choices')).status).toBe(200);
  });
});
