import { PortalClient, signInUrl, textOf } from '../support/browser';
import { ConsoleClient, staffActions, staffClient, staffSignInUrl, staffToken } from '../support/console';
import { adminToken, createAccount, uniqueId } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';
import { CLI, cliEnv, run } from '../support/processes';

/**
 * Staff sign-in to the compliance console: a one-use token from the identity provider (audience
 * optgate-console, a roles claim), and nobody else: not a subscriber, not an API caller.
 */

let svc: TestService;
let admin: string;
beforeAll(async () => {
  svc = await startTestService({ CONSOLE_SIGNIN_PER_MINUTE: '1000', PORTAL_SIGNIN_PER_MINUTE: '1000' });
  admin = await adminToken(svc);
}, 60_000);
afterAll(() => svc?.stop());

describe('staff sign-in', () => {
  it('a compliance link opens the console once, with a session cookie of its own, and is recorded', async () => {
    const sub = uniqueId('alice');
    const url = await staffSignInUrl(svc, sub, 'compliance');
    const client = new ConsoleClient(svc.url);
    await client.signIn(url);
    const cookie = client.setCookies.find((c) => c.startsWith('optgate_console='))!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    expect(cookie).toMatch(/Path=\/console/i);
    const home = await client.get('/console');
    expect(home.status).toBe(200);
    expect(home.headers.get('cache-control')).toBe('no-store');
    expect(home.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(textOf(home.body)).toContain(`${sub} · Compliance`);
    expect(textOf(home.body)).toContain("Regulator's question");

    // The link is single use.
    const again = await new ConsoleClient(svc.url).get(url);
    expect(again.status).toBe(401);
    expect(textOf(again.body)).toContain('already been used');

    const signedIn = (await staffActions(svc, 'console_signed_in')).filter((r) => r.data.actor === sub);
    expect(signedIn).toEqual([
      expect.objectContaining({
        accountId: null,
        data: { action: 'console_signed_in', actor: sub, role: 'compliance' },
      }),
    ]);
  });

  it('a support link opens the console with the ticket form and no compliance pages', async () => {
    const client = await staffClient(svc, uniqueId('bob'), 'support');
    const home = textOf((await client.get('/console')).body);
    expect(home).toContain('Customer support');
    expect(home).toContain('Ticket reference');
    expect(home).not.toContain("Regulator's question");
    for (const page of ['/console/question', '/console/exports', '/console/integrity', '/console/charts']) {
      expect([page, (await client.get(page)).status]).toEqual([page, 403]);
    }
  });

  it('refuses expired, foreign-audience, role-less and forged tokens', async () => {
    const expired = await staffToken(svc, 'carol', 'compliance', { ttlSeconds: -60 });
    const r1 = await new ConsoleClient(svc.url).get(`/console/login?token=${expired}`);
    expect(r1.status).toBe(401);
    expect(textOf(r1.body)).toContain('expired');

    // A subscriber's portal link is a genuine token, but not a staff member's.
    const accountId = await createAccount(svc, admin);
    const portalLink = new URL(await signInUrl(svc, accountId));
    const r2 = await new ConsoleClient(svc.url).get(`/console/login${portalLink.search}`);
    expect(r2.status).toBe(403);

    const noRole = await staffToken(svc, 'dave', ['admin']);
    expect((await new ConsoleClient(svc.url).get(`/console/login?token=${noRole}`)).status).toBe(403);

    const forged = `${(await staffToken(svc, 'erin', 'compliance')).slice(0, -4)}AAAA`;
    expect((await new ConsoleClient(svc.url).get(`/console/login?token=${forged}`)).status).toBe(401);
    expect((await new ConsoleClient(svc.url).get('/console/login')).status).toBe(400);
  });

  it('a subscriber session or an API token never opens the console (403); no session is 401', async () => {
    const accountId = await createAccount(svc, admin);
    const subscriber = new PortalClient(svc.url);
    await subscriber.signIn(await signInUrl(svc, accountId));
    for (const page of ['/console', `/console/accounts/${accountId}`, '/console/question']) {
      expect([page, (await subscriber.get(page)).status]).toEqual([page, 403]);
    }
    const api = await new PortalClient(svc.url).get('/console', { authorization: `Bearer ${admin}` });
    expect(api.status).toBe(403);
    const none = await new PortalClient(svc.url).get('/console');
    expect(none.status).toBe(401);
    expect(textOf(none.body)).toContain('npx optgate staff-link');
  });

  it('signing out needs the CSRF token, and ends the session on the server', async () => {
    const client = await staffClient(svc, uniqueId('frank'), 'compliance');
    const session = client.cookie!;
    expect((await client.post('/console/logout', { _csrf: 'wrong' })).status).toBe(403);
    const out = await client.post('/console/logout', { _csrf: await client.csrf() });
    expect(out.status).toBe(200);
    const replay = new ConsoleClient(svc.url);
    replay.cookie = session;
    expect((await replay.get('/console')).status).toBe(401);
  });
});

describe('npx optgate staff-link', () => {
  const cli = (args: string[]) => run(CLI, args, cliEnv(svc));

  it('prints a one-use link that signs a member of staff in with the role asked for', async () => {
    const out = await cli(['staff-link', '--sub', 'grace', '--role', 'support']);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const url = out.stdout.trim();
    expect(url).toMatch(/^http:\/\/[\w.]+:\d+\/console\/login\?token=[\w.-]+$/);
    const client = new ConsoleClient(svc.url);
    await client.signIn(`${svc.url}${new URL(url).pathname}${new URL(url).search}`);
    expect(textOf((await client.get('/console')).body)).toContain('grace · Customer support');
    const issued = (await staffActions(svc, 'staff_link_issued')).at(-1)!;
    expect(issued.data).toMatchObject({ subject: 'grace', role: 'support', ttlSeconds: 600 });
  });

  it('refuses a missing role, an unknown role and a long life', async () => {
    expect((await cli(['staff-link', '--sub', 'grace'])).code).toBe(2);
    expect((await cli(['staff-link', '--sub', 'grace', '--role', 'admin'])).stderr).toContain(
      '--role compliance|support',
    );
    expect((await cli(['staff-link', '--sub', 'grace', '--role', 'support', '--ttl', '1h'])).code).toBe(2);
  });
});

describe('console session limits', () => {
  let limited: TestService;
  /** The service's clock runs this far ahead of real time (for the maximum age). */
  let ahead = 0;
  beforeAll(async () => {
    limited = await startTestService(
      { CONSOLE_IDLE_SECONDS: '2', CONSOLE_SESSION_MAX_HOURS: '1', CONSOLE_SIGNIN_PER_MINUTE: '1000' },
      { clock: () => new Date(Date.now() + ahead) },
    );
  }, 60_000);
  afterAll(() => limited?.stop());
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('activity keeps a session alive; two idle seconds end it, on the server', async () => {
    const client = await staffClient(limited, uniqueId('ida'), 'compliance');
    for (let i = 0; i < 3; i++) {
      await sleep(1000);
      expect((await client.get('/console')).status).toBe(200);
    }
    await sleep(2300);
    expect((await client.get('/console')).status).toBe(401);
  }, 20_000);

  it('a session older than CONSOLE_SESSION_MAX_HOURS ends, however active', async () => {
    const client = await staffClient(limited, uniqueId('max'), 'compliance');
    expect((await client.get('/console')).status).toBe(200);
    ahead = 3_600_000 + 1000;
    try {
      expect((await client.get('/console')).status).toBe(401);
    } finally {
      ahead = 0;
    }
  });
});
