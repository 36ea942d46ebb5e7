import { compactVerify, createLocalJWKSet, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { loadKeys } from '../../src/platform/auth/keys';
import {
  csrfOf,
  noticeVersionOf,
  PortalClient,
  radiosOf,
  receiptIdsOf,
  signInToken,
  signInUrl,
  textOf,
} from '../support/browser';
import { adminToken, createAccount, decide, putConsents, recipientFor, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/**
 * The portal at the HTTP level: what a browser hides (status codes, headers, cookies) and what
 * an attacker sends (forged forms, other people's receipts, doctored sign-in tokens).
 */

let svc: TestService;
let admin: string;
let pipeline: string;

beforeAll(async () => {
  // Many sign-ins from one address: the limit itself is tested in sessions.test.ts.
  svc = await startTestService({ PORTAL_SIGNIN_PER_MINUTE: '10000' });
  admin = await adminToken(svc);
  pipeline = await svc.token(
    'decisions',
    [...svc.config.catalog.purposes.keys(), ...svc.config.catalog.exceptions.keys()],
    { subject: 'ad-pipeline' },
  );
});
afterAll(() => svc.stop());

async function signedIn(accountId?: string): Promise<{ client: PortalClient; accountId: string }> {
  const id = accountId ?? (await createAccount(svc, admin));
  const client = new PortalClient(svc.url);
  await client.signIn(await signInUrl(svc, id));
  return { client, accountId: id };
}

async function eventCount(accountId: string): Promise<number> {
  const { rows } = await svc.sql.query('select count(*)::int as n from consent_events where account_id = $1', [
    accountId,
  ]);
  return rows[0].n as number;
}

async function decision(accountId: string, purpose: string, categories: string[]) {
  const r = await decide(svc, pipeline, { accountId, purpose, categories, ...recipientFor(svc, purpose) });
  expect(r.status).toBe(200);
  return r.body as { allow: boolean; results: { category: string; allow: boolean; reason: string }[] };
}

/** Posts the choices form as the page would, with this session's token and the notice shown. */
async function save(client: PortalClient, fields: Record<string, string>, action = 'save') {
  const page = await client.get('/choices');
  const form = { _csrf: csrfOf(page.body)!, noticeVersion: noticeVersionOf(page.body)!, action, ...fields };
  return client.post('/choices', form);
}

const PAGES_PUBLIC = ['/', '/notice', '/notice/v1', '/notice/v2', '/notice/v3'];
const PAGES_SIGNED_IN = ['/choices', '/history', '/activity'];

describe('public pages, readable without signing in', () => {
  it('the landing page', async () => {
    const r = await new PortalClient(svc.url).get('/');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    expect(r.body).toMatch(/^<!doctype html>\n<html lang="en">/);
    const text = textOf(r.body);
    expect(text).toContain('We may not use, share or sell your personal information unless you say yes first.');
    expect(text).toContain('Saying no costs you nothing');
    expect(r.body).toContain('href="/notice"');
    // Signed out: no link to signed-in pages, no sign-out form.
    expect(r.body).not.toContain('href="/choices"');
    expect(r.body).not.toContain('action="/logout"');
  });

  it('the current notice and every earlier version, with effective date and content hash', async () => {
    const notices = await call(svc.url, 'GET', '/v1/notices');
    expect(notices.body.current).toBe('v3');
    const client = new PortalClient(svc.url);
    const current = await client.get('/notice');
    expect(current.status).toBe(200);
    const v3 = notices.body.versions.find((v: { version: string }) => v.version === 'v3');
    expect(current.body).toContain(v3.sha256);
    expect(textOf(current.body)).toContain('Privacy notice, version v3 This is the notice in force.');
    expect(textOf(current.body)).toContain('In effect from September 1, 2025');
    for (const v of notices.body.versions as {
      version: string;
      sha256: string;
      effectiveAt: string;
      material: string[];
    }[]) {
      expect(current.body).toContain(`href="/notice/${v.version}"`);
      const page = await client.get(`/notice/${v.version}`);
      expect(page.status).toBe(200);
      const text = textOf(page.body);
      expect(text).toContain(`Privacy notice, version ${v.version}`);
      expect(page.body).toContain(`<code class="hash">${v.sha256}</code>`);
      const date = new Intl.DateTimeFormat('en', { dateStyle: 'long', timeZone: 'UTC' }).format(
        new Date(v.effectiveAt),
      );
      expect(text).toContain(`In effect from ${date}`);
      if (v.version !== 'v3') expect(text).toContain('This version has been replaced. Read the current notice.');
    }
    // v2 is a material change for sale and disclosure, and says so.
    expect(textOf((await client.get('/notice/v2')).body)).toContain(
      'Material change for Selling your data, Sharing with other companies',
    );
    // The notice text itself is rendered, not shown as markdown source.
    expect(current.body).toMatch(/<h1[^>]*>Your privacy choices<\/h1>/);
    expect(current.body).toContain('<strong>What this covers.</strong>');
  });

  it('an unknown notice version or page is the HTML 404 page; API paths keep their problem+json', async () => {
    const client = new PortalClient(svc.url);
    for (const path of ['/notice/v9', '/no-such-page', '/receipts']) {
      const r = await client.get(path);
      expect(r.status).toBe(404);
      expect(r.headers.get('content-type')).toMatch(/^text\/html/);
      expect(textOf(r.body)).toContain('There is nothing at this address.');
    }
    const api = await client.get('/v1/nothing', { accept: 'application/json' });
    expect(api.status).toBe(404);
    expect(api.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('signed-in pages redirect a visitor without a session to the landing page, which says why', async () => {
    const client = new PortalClient(svc.url);
    for (const path of [...PAGES_SIGNED_IN, '/choices/saved', '/receipts/00000000-0000-4000-8000-000000000000']) {
      const r = await client.get(path);
      expect(r.status).toBe(303);
      expect(r.location).toBe('/?ended=1');
    }
    expect(textOf((await client.get('/?ended=1')).body)).toContain('Your session ended. Sign in again to continue.');
    const post = await client.post('/choices', { action: 'allow_all' });
    expect(post.status).toBe(401);
  });
});

describe('security headers', () => {
  it("every page has a strict CSP without inline script or style, and helmet's headers", async () => {
    const { client } = await signedIn();
    for (const path of [...PAGES_PUBLIC, ...PAGES_SIGNED_IN, '/no-such-page', '/login?token=x', '/static/portal.css']) {
      const r = await client.get(path);
      const csp = r.headers.get('content-security-policy');
      expect(csp).toBeTruthy();
      const directives = Object.fromEntries(
        csp!
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...values]) => [name, values]),
      );
      expect(directives['default-src']).toEqual(["'none'"]);
      expect(directives['style-src']).toEqual(["'self'"]);
      expect(directives['form-action']).toEqual(["'self'"]);
      expect(directives['frame-ancestors']).toEqual(["'none'"]);
      expect(directives['base-uri']).toEqual(["'none'"]);
      // No script at all: nothing may widen script-src beyond default-src 'none'.
      expect(directives['script-src'] ?? ["'none'"]).toEqual(["'none'"]);
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|unsafe-hashes|\*|data:|https?:/);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
      expect(r.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
      expect(r.headers.get('cross-origin-opener-policy')).toBe('same-origin');
      expect(r.headers.get('x-powered-by')).toBeNull();
      if (path.startsWith('/static/')) {
        expect(r.headers.get('content-type')).toMatch(/^text\/css/);
        continue;
      }
      // Pages with a subscriber's data are not cached anywhere. (The catch-all 404 page runs without the portal's
      // page context, hence without this header: harmless there, see the language test for what else it misses.)
      if (path !== '/no-such-page')
        expect({ path, cacheControl: r.headers.get('cache-control') }).toEqual({ path, cacheControl: 'no-store' });
      // Nothing the CSP would block: no script, no inline style, no event handler attribute.
      expect(r.body).not.toMatch(/<script|\sstyle=|\son[a-z]+=|javascript:/i);
    }
  });
});

describe('sign-in', () => {
  it('a valid link starts a session in an HttpOnly, SameSite=Lax cookie and lands on the choices', async () => {
    const accountId = await createAccount(svc, admin);
    const client = new PortalClient(svc.url);
    const r = await client.get(await signInUrl(svc, accountId));
    expect(r.status).toBe(303);
    expect(r.location).toBe('/choices');
    expect(client.setCookies).toHaveLength(1);
    const cookie = client.setCookies[0]!;
    const [pair, ...attributes] = cookie.split(';').map((s) => s.trim());
    expect(pair).toMatch(/^optgate_session=[A-Za-z0-9_-]{43}$/);
    expect(attributes).toContain('HttpOnly');
    expect(attributes).toContain('SameSite=Lax');
    expect(attributes).toContain('Path=/');
    // A session cookie: gone with the browser; the idle timeout is enforced on the server.
    expect(cookie).not.toMatch(/Max-Age|Expires/i);
    // Development/test runs on http: Secure is configurable (sessions.test.ts checks it on).
    expect(attributes).not.toContain('Secure');
    // The cookie is not the account id nor anything derived visibly from it.
    expect(cookie).not.toContain(accountId);
    const page = await client.get('/choices');
    expect(page.status).toBe(200);
    expect(textOf(page.body)).toContain(`Signed in as account ${accountId}`);
  });

  it('a link works once: reusing it is refused', async () => {
    const accountId = await createAccount(svc, admin);
    const url = await signInUrl(svc, accountId);
    await new PortalClient(svc.url).signIn(url);
    const again = new PortalClient(svc.url);
    const r = await again.get(url);
    expect(r.status).toBe(401);
    expect(textOf(r.body)).toContain('This sign-in link has already been used.');
    expect(again.setCookies).toEqual([]);
  });

  it(
    'expired, tampered, wrong-audience, wrong-issuer, foreign-key, unsigned and incomplete tokens are ' + 'refused',
    async () => {
      const accountId = await createAccount(svc, admin);
      const other = await createAccount(svc, admin);
      const keys = await loadKeys(svc.config.auth, svc.config.env);
      const valid = await signInToken(svc, accountId);
      const [h, p, s] = valid.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
      const foreign = await generateKeyPair('ES256');
      const now = Math.floor(Date.now() / 1000);
      const signed = (payload: Record<string, unknown>, key = keys.signing.key, kid = keys.signing.kid) =>
        new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' }).sign(key);
      const base = {
        iss: svc.config.auth.issuer,
        aud: svc.config.portal.tokenAudience,
        sub: accountId,
        iat: now,
        exp: now + 600,
        jti: uniqueId('jti'),
      };

      const cases: Record<string, { token: string; message: RegExp }> = {
        expired: { token: await signInToken(svc, accountId, { ttlSeconds: -5 }), message: /has expired/ },
        'signature altered': {
          token: `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`,
          message: /not valid/,
        },
        'payload altered (another account, same signature)': {
          token: `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: other })).toString('base64url')}.${s}`,
          message: /not valid/,
        },
        'API audience (a pipeline token)': {
          token: await signInToken(svc, accountId, { audience: svc.config.auth.audience }),
          message: /not valid/,
        },
        'API token from the harness': {
          token: await svc.token('decisions', [], { subject: accountId }),
          message: /not valid/,
        },
        'wrong issuer': { token: await signInToken(svc, accountId, { issuer: 'someone-else' }), message: /not valid/ },
        'signed by another key, same kid': { token: await signed(base, foreign.privateKey), message: /not valid/ },
        unsigned: {
          token: `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(base)}.`,
          message: /not valid/,
        },
        'no jti (could not be single-use)': { token: await signed({ ...base, jti: undefined }), message: /not valid/ },
        'no exp': { token: await signed({ ...base, exp: undefined }), message: /not valid/ },
        'issued too long ago (more than 15 minutes)': {
          token: await signed({ ...base, iat: now - 20 * 60 }),
          message: /not valid|expired/,
        },
        'malformed account id': { token: await signed({ ...base, sub: 'not an id!' }), message: /not valid/ },
        garbage: { token: 'not.a.token', message: /not valid/ },
      };
      for (const [name, { token, message }] of Object.entries(cases)) {
        const client = new PortalClient(svc.url);
        const r = await client.get(`/login?token=${encodeURIComponent(token)}`);
        expect({ name, status: r.status }).toEqual({ name, status: 401 });
        expect({ name, text: textOf(r.body) }).toEqual({ name, text: expect.stringMatching(message) });
        expect({ name, cookies: client.setCookies }).toEqual({ name, cookies: [] });
      }
      // The untouched token still works (the refusals did not burn it).
      await new PortalClient(svc.url).signIn(`${svc.url}/login?token=${valid}`);
      expect(decodeProtectedHeader(valid).kid).toBe(keys.signing.kid);
    },
  );

  it('an unknown account and a missing token are refused with a message that says what to do', async () => {
    const client = new PortalClient(svc.url);
    const unknown = await client.get(await signInUrl(svc, uniqueId('nobody')));
    expect(unknown.status).toBe(401);
    expect(textOf(unknown.body)).toContain('We could not find your account.');
    const missing = await client.get('/login');
    expect(missing.status).toBe(400);
    expect(textOf(missing.body)).toContain('Sign in from your account page');
    expect(client.setCookies).toEqual([]);
  });

  it('signing in again replaces the session: the old cookie is worthless', async () => {
    const { client, accountId } = await signedIn();
    const first = client.cookie!;
    await client.signIn(await signInUrl(svc, accountId));
    expect(client.cookie).not.toBe(first);
    const stale = await fetch(`${svc.url}/choices`, { headers: { cookie: first }, redirect: 'manual' });
    expect(stale.status).toBe(303);
    expect(stale.headers.get('location')).toBe('/?ended=1');
    expect((await client.get('/choices')).status).toBe(200);
  });

  it('a made-up session cookie is not a session', async () => {
    const client = new PortalClient(svc.url);
    for (const value of ['x', 'A'.repeat(43), '../../etc', '']) {
      client.cookie = `optgate_session=${value}`;
      const r = await client.get('/choices');
      expect(r.status).toBe(303);
      expect(r.location).toBe('/?ended=1');
    }
  });

  it('sign-out ends the session on the server, not only in the browser', async () => {
    const { client, accountId } = await signedIn();
    const cookie = client.cookie!;
    const csrf = await client.csrf();
    const out = await client.post('/logout', { _csrf: csrf });
    expect(out.status).toBe(303);
    expect(out.location).toBe('/?signedOut=1');
    expect(client.setCookies).toContainEqual(expect.stringMatching(/^optgate_session=;.*Expires=Thu, 01 Jan 1970/));
    expect(textOf((await client.get('/?signedOut=1')).body)).toContain('You are signed out.');
    // Someone who kept the old cookie (and its form token) can do nothing with it.
    const replay = new PortalClient(svc.url);
    replay.cookie = cookie;
    expect((await replay.get('/choices')).location).toBe('/?ended=1');
    const post = await replay.post('/choices', { _csrf: csrf, noticeVersion: 'v3', action: 'allow_all' });
    expect(post.status).toBe(401);
    expect(await eventCount(accountId)).toBe(0);
  });

  it('a choices form whose session ended keeps its selections (from this site only) for after sign-in', async () => {
    const selections = { 'p:data_sale': 'allow', 'c:ad_targeting:name': 'deny', 'c:x:y': 'maybe', other: 'allow' };
    const form = { _csrf: 'C'.repeat(43), noticeVersion: 'v3', action: 'save', ...selections };
    // From another site (no Origin of ours, no Sec-Fetch-Site same-origin): nothing is kept.
    const elsewhere = new PortalClient(svc.url);
    const planted = await elsewhere.post('/choices', form, { origin: 'https://attacker.example' });
    expect(planted.status).toBe(401);
    expect(elsewhere.setCookies.filter((c) => c.startsWith('optgate_pending='))).toEqual([]);
    // From the portal's own page: the allow/deny selections, and nothing else, are kept for 15 minutes.
    const ours = new PortalClient(svc.url);
    const kept = await ours.post('/choices', form, { origin: svc.url });
    expect(kept.status).toBe(401);
    expect(textOf(kept.body)).toContain('Sign in again within 15 minutes');
    const cookie = ours.setCookies.find((c) => c.startsWith('optgate_pending='))!;
    expect(cookie).toMatch(/Max-Age=900;.*HttpOnly/);
    const value = /^optgate_pending=([^;]+)/.exec(cookie)![1]!;
    expect(JSON.parse(Buffer.from(value, 'base64url').toString())).toEqual({
      'p:data_sale': 'allow',
      'c:ad_targeting:name': 'deny',
    });
    // After signing in, the page shows them checked, once; nothing was recorded.
    const { client, accountId } = await signedIn();
    client.cookie = `${client.cookie}; optgate_pending=${value}`;
    const page = await client.get('/choices');
    expect(textOf(page.body)).toContain('Your session had ended, so nothing was saved.');
    expect(page.body).toMatch(/name="p:data_sale" value="allow" checked/);
    expect(page.body).toMatch(/name="c:ad_targeting:name" value="deny" checked/);
    expect(client.setCookies.at(-1)).toMatch(/^optgate_pending=;.*Expires=Thu, 01 Jan 1970/);
    expect(await eventCount(accountId)).toBe(0);
    // A cookie that is not what the portal wrote is ignored.
    const foreign = Buffer.from('{"admin":true}').toString('base64url');
    client.cookie = `${client.cookie!.split(';')[0]}; optgate_pending=${foreign}`;
    expect(textOf((await client.get('/choices')).body)).not.toContain('Your session had ended');
  });
});

describe("CSRF: every form needs the session's token", () => {
  it('an expired choices form keeps the selections it carried and asks to confirm them; confirming saves', async () => {
    const { client, accountId } = await signedIn();
    const stale = await client.post('/choices', {
      _csrf: 'B'.repeat(43),
      noticeVersion: 'v3',
      action: 'save',
      'c:ad_targeting:name': 'allow',
      'c:product_analytics:other_customer_info': 'deny',
    });
    expect(stale.status).toBe(403);
    expect(await eventCount(accountId)).toBe(0);
    expect(stale.body).toMatch(/name="c:ad_targeting:name" value="allow" checked/);
    expect(stale.body).toMatch(/name="c:product_analytics:other_customer_info" value="deny" checked/);
    const fresh = csrfOf(stale.body)!;
    expect(fresh).toBe(await client.csrf());
    const confirmed = await client.post('/choices', {
      _csrf: fresh,
      noticeVersion: noticeVersionOf(stale.body)!,
      action: 'save',
      'c:ad_targeting:name': 'allow',
      'c:product_analytics:other_customer_info': 'deny',
    });
    expect(confirmed.status).toBe(303);
    expect(await eventCount(accountId)).toBe(2);
  });

  it('POST without or with a wrong _csrf is 403 and records nothing', async () => {
    const { client, accountId } = await signedIn();
    const victim = await signedIn();
    const attackerToken = await victim.client.csrf();
    const forged: Record<string, Record<string, string>> = {
      'no token': { noticeVersion: 'v3', action: 'allow_all' },
      'empty token': { _csrf: '', noticeVersion: 'v3', action: 'allow_all' },
      'wrong token': { _csrf: 'A'.repeat(43), noticeVersion: 'v3', action: 'allow_all' },
      "another session's token": { _csrf: attackerToken, noticeVersion: 'v3', action: 'allow_all' },
    };
    for (const [name, form] of Object.entries(forged)) {
      for (const path of ['/choices', '/choices/revoke-all', '/logout']) {
        const r = await client.post(path, form);
        expect({ name, path, status: r.status }).toEqual({ name, path, status: 403 });
        // The choices form comes back to confirm (with a fresh token); the other forms say why they were refused.
        expect(textOf(r.body)).toContain(
          path === '/choices'
            ? 'This page had expired, so nothing was saved.'
            : 'This form has expired or did not come from this site.',
        );
      }
    }
    // A token sent as a query parameter or a header is not the form field.
    const good = await client.csrf();
    expect((await client.post(`/choices?_csrf=${good}`, { noticeVersion: 'v3', action: 'allow_all' })).status).toBe(
      403,
    );
    expect(
      (await client.post('/choices', { noticeVersion: 'v3', action: 'allow_all' }, { 'x-csrf-token': good })).status,
    ).toBe(403);
    // JSON is not a form: no token is read from it and nothing is saved.
    const json = await fetch(`${svc.url}/choices`, {
      method: 'POST',
      headers: { cookie: client.cookie!, 'content-type': 'application/json' },
      body: JSON.stringify({ _csrf: good, noticeVersion: 'v3', action: 'allow_all' }),
      redirect: 'manual',
    });
    expect(json.status).toBe(403);

    expect(await eventCount(accountId)).toBe(0);
    expect((await decision(accountId, 'ad_targeting', ['name'])).allow).toBe(false);
    // The session survived the forged sign-out.
    expect((await client.get('/choices')).status).toBe(200);
    // And the real token works.
    const real = { _csrf: good, noticeVersion: 'v3', action: 'save', 'c:ad_targeting:name': 'allow' };
    expect((await client.post('/choices', real)).status).toBe(303);
    expect((await decision(accountId, 'ad_targeting', ['name'])).allow).toBe(true);
  });

  // body-parser's own errors (a form over 32 kB, more than 500 fields) are the sender's: 413, and nothing recorded.
  it('an oversized or malformed form is a 4xx page, not a 503', async () => {
    const { client, accountId } = await signedIn();
    const csrf = await client.csrf();
    const big = await client.post('/choices', {
      _csrf: csrf,
      noticeVersion: 'v3',
      action: 'allow_all',
      pad: 'x'.repeat(40_000),
    });
    const many = await client.post('/choices', {
      _csrf: csrf,
      noticeVersion: 'v3',
      ...Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`f${i}`, '1'])),
    });
    expect(await eventCount(accountId)).toBe(0);
    expect([big.status, many.status]).toEqual([413, 413]);
  });

  it('a forged form carrying Sec-GPC records nothing, not even the GPC opt-outs', async () => {
    const { client, accountId } = await signedIn();
    const forged = await client.request('POST', '/choices', {
      form: { noticeVersion: 'v3', action: 'decline_all' },
      headers: { 'sec-gpc': '1' },
    });
    expect(forged.status).toBe(403);
    expect(await eventCount(accountId)).toBe(0);
  });

  it('the revoke-all form is protected too: a forged one leaves the permissions standing', async () => {
    const { client, accountId } = await signedIn();
    await putConsents(svc, admin, accountId, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
    expect((await client.post('/choices/revoke-all', {})).status).toBe(403);
    expect((await decision(accountId, 'ad_targeting', ['name'])).allow).toBe(true);
    expect(await eventCount(accountId)).toBe(1);
  });
});

describe('a subscriber sees and changes only their own account', () => {
  it(
    "another account's receipt is 404, its history and activity are not shown, and a form cannot name another " +
      'account',
    async () => {
      const alice = await signedIn();
      const bob = await signedIn();
      await save(alice.client, { 'c:ad_targeting:health': 'allow' });
      await decide(svc, pipeline, { accountId: alice.accountId, purpose: 'ad_targeting', categories: ['health'] });
      const aliceReceipts = receiptIdsOf((await alice.client.get('/history')).body);
      expect(aliceReceipts).toHaveLength(1);
      const receipt = aliceReceipts[0]!;
      expect((await alice.client.get(`/receipts/${receipt}`)).status).toBe(200);

      for (const path of [`/receipts/${receipt}`, `/receipts/${receipt}/receipt.jws`]) {
        const r = await bob.client.get(path);
        expect(r.status).toBe(404);
        expect(r.body).not.toContain(alice.accountId);
        expect(r.body).not.toContain('eyJ');
      }
      for (const path of [
        '/history',
        '/activity',
        `/history?accountId=${alice.accountId}`,
        `/activity?accountId=${alice.accountId}`,
        '/choices',
      ]) {
        const r = await bob.client.get(path);
        expect(r.status).toBe(200);
        expect(r.body).not.toContain(alice.accountId);
        expect(r.body).not.toContain(receipt);
      }
      expect(textOf((await bob.client.get('/history')).body)).toContain('No changes yet.');
      expect(textOf((await bob.client.get('/activity')).body)).toContain('No system has asked to use your data yet.');

      // A form that names Alice changes Bob's account only, if anything.
      const csrf = await bob.client.csrf();
      const r = await bob.client.post(`/choices?accountId=${alice.accountId}`, {
        _csrf: csrf,
        noticeVersion: 'v3',
        accountId: alice.accountId,
        sub: alice.accountId,
        action: 'save',
        'c:ad_targeting:health': 'deny',
      });
      expect(r.status).toBe(303);
      expect((await decision(alice.accountId, 'ad_targeting', ['health'])).allow).toBe(true);
      expect(await eventCount(alice.accountId)).toBe(1);
      expect(await eventCount(bob.accountId)).toBe(1);

      // Malformed receipt ids are simply not found.
      for (const id of ['x', '1', `${receipt}x`, "' or 1=1 --"]) {
        expect((await bob.client.get(`/receipts/${encodeURIComponent(id)}`)).status).toBe(404);
      }
    },
  );
});

describe('choices: what is shown, and what saving records', () => {
  it('nothing is pre-selected for a fresh account, and every purpose × category is offered', async () => {
    const { client } = await signedIn();
    const page = await client.get('/choices');
    const radios = radiosOf(page.body);
    const { purposes, categories } = svc.config.catalog;
    const items = [...purposes.values()].flatMap((p) => p.categories.map((c) => `c:${p.id}:${c}`));
    // One choice per purpose, then one per kind of information it asks for: never one it does not ask for.
    expect(radios.map((r) => r.name)).toEqual(
      [...purposes.values()].flatMap((p) => [
        `p:${p.id}`,
        `p:${p.id}`,
        ...p.categories.flatMap((c) => [`c:${p.id}:${c}`, `c:${p.id}:${c}`]),
      ]),
    );
    expect(radios.filter((r) => r.checked)).toEqual([]);
    for (const name of [...purposes.keys()].map((p) => `p:${p}`).concat(items))
      expect(radios.filter((r) => r.name === name).map((r) => r.value)).toEqual(['allow', 'deny']);
    expect(items).not.toContain('c:ad_targeting:ssn');
    const text = textOf(page.body);
    expect(text).toContain('These choices are made under notice version v3.');
    const optOuts = [...categories.values()].filter((c) => c.regime === 'opt_out').length;
    expect(text.match(/Not allowed: you have not chosen/g)).toHaveLength(items.length - optOuts * purposes.size);
    expect(text.match(/Used unless you say no/g)).toHaveLength(purposes.size);
    // No bulk accept; revoke-all in its own form, in the summary on top.
    expect(page.body).not.toContain('allow_all');
    expect(page.body).toMatch(/<section class="summary"[\s\S]*action="\/choices\/revoke-all"[\s\S]*<\/section>/);
    expect(text).toContain('What you allow now You allow no use of your information.');
  });

  it('saving records only what changed, and the confirmation lists exactly that, with its one receipt', async () => {
    const { client, accountId } = await signedIn();
    await putConsents(svc, admin, accountId, [{ purpose: 'data_sale', category: 'name', choice: 'grant' }]);
    const r = await save(client, {
      'c:data_sale:name': 'allow', // already allowed: no event
      'c:ad_targeting:ip_addresses': 'allow',
      'c:ad_targeting:health': 'deny', // never asked: a decline
      'c:ad_targeting:children': 'deny', // a kind targeted advertising does not ask for: ignored
      'c:product_analytics:other_customer_info': 'deny', // opt-out category: an opt-out
      'c:no_such_purpose:name': 'allow', // ignored
      'c:ad_targeting:ssn': 'maybe', // ignored
    });
    expect(r.status).toBe(303);
    expect(r.location).toBe('/choices/saved');
    const saved = await client.get('/choices/saved');
    const items = [
      .../<ul class="changes">([\s\S]*?)<\/ul>/.exec(saved.body)![1]!.matchAll(/<li>([\s\S]*?)<\/li>/g),
    ].map((m) => textOf(m[1]!));
    // In the order the purpose asks: ip_addresses comes before health.
    expect(items).toEqual([
      expect.stringMatching(
        new RegExp(
          '^Targeted advertising: The addresses your traffic comes from and goes to ' +
            'You allowed it \\(allowed until \\w+ \\d+, \\d{4}\\)$',
        ),
      ),
      'Targeted advertising: Health information You said no',
      'Improving our products: Other information about your account (not personal) You said no',
    ]);
    const { rows } = await svc.sql.query(
      'select event_id, purpose, category, kind, receipt_id from consent_events ' +
        "where account_id = $1 and channel = 'portal' order by id",
      [accountId],
    );
    expect(rows.map((e) => `${e.purpose}:${e.category}:${e.kind}`)).toEqual([
      'ad_targeting:ip_addresses:granted',
      'ad_targeting:health:declined',
      'product_analytics:other_customer_info:opted_out',
    ]);
    // One act, one receipt.
    expect(receiptIdsOf(saved.body)).toEqual([rows[0].receipt_id]);
    expect(new Set(rows.map((e) => e.receipt_id)).size).toBe(1);

    expect((await decision(accountId, 'ad_targeting', ['ip_addresses'])).results[0]!.reason).toBe('consent_granted');
    expect((await decision(accountId, 'ad_targeting', ['health'])).results[0]!.reason).toBe('no_consent');
    expect((await decision(accountId, 'product_analytics', ['other_customer_info'])).results[0]!.reason).toBe(
      'opted_out',
    );

    // The page now shows those choices as chosen, and only those (plus the earlier grant).
    const checked = radiosOf((await client.get('/choices')).body)
      .filter((x) => x.checked)
      .map((x) => `${x.name}=${x.value}`);
    expect(checked.sort()).toEqual(
      [
        'c:ad_targeting:health=deny',
        'c:ad_targeting:ip_addresses=allow',
        'c:data_sale:name=allow',
        'c:product_analytics:other_customer_info=deny',
      ].sort(),
    );

    // Saving again with nothing different records nothing and says so.
    const again = await save(client, { 'c:ad_targeting:ip_addresses': 'allow' });
    expect(again.location).toBe('/choices/saved');
    expect(textOf((await client.get('/choices/saved')).body)).toContain('Nothing changed.');
    expect(await eventCount(accountId)).toBe(4);
  });

  it('there is no allow-everything: each permission is its own act; an unknown action records nothing', async () => {
    const { client, accountId } = await signedIn();
    for (const action of ['allow_all', 'decline_all', 'renew:ad_targeting:nothing', 'whatever']) {
      const page = await client.get('/choices');
      const r = await client.post('/choices', {
        _csrf: csrfOf(page.body)!,
        noticeVersion: noticeVersionOf(page.body)!,
        action,
      });
      expect({ action, status: r.status }).toEqual({ action, status: 422 });
    }
    expect(await eventCount(accountId)).toBe(0);
  });

  it('the summary says how many uses are allowed and which expire soon, each with its renew button', async () => {
    const { client, accountId } = await signedIn();
    const soon = new Date(Date.now() + 10 * 86_400_000).toISOString();
    await putConsents(svc, admin, accountId, [
      { purpose: 'ad_targeting', category: 'name', choice: 'grant', expiresAt: soon },
      { purpose: 'product_analytics', category: 'app_usage_history', choice: 'grant' },
    ]);
    const page = await client.get('/choices');
    const text = textOf(page.body);
    expect(text).toMatch(/What you allow now You allow 2 use\(s\) of your information\. · 1 expire\(s\) before /);
    expect(text).toMatch(/Expiring soon Targeted advertising: Your name: expires on \w+ \d{1,2}, \d{4} Renew/);
    await save(client, {}, 'renew:ad_targeting:name');
    const after = textOf((await client.get('/choices')).body);
    expect(after).toContain('You allow 2 use(s) of your information.');
    expect(after).not.toContain('Expiring soon');
  });

  it('shows each expiry, warns when it is near, and renews one item or all before expiry', async () => {
    const { client, accountId } = await signedIn();
    const soon = new Date(Date.now() + 10 * 86_400_000);
    await putConsents(svc, admin, accountId, [
      { purpose: 'ad_targeting', category: 'name', choice: 'grant', expiresAt: soon.toISOString() },
      {
        purpose: 'data_sale',
        category: 'name',
        choice: 'grant',
        expiresAt: new Date(Date.now() + 100 * 86_400_000).toISOString(),
      },
    ]);
    const longDate = (d: Date) => new Intl.DateTimeFormat('en', { dateStyle: 'long', timeZone: 'UTC' }).format(d);
    const page = await client.get('/choices');
    expect(page.body).toContain(`id="status-ad_targeting-name">Allowed until ${longDate(soon)}: expires soon</p>`);
    expect(page.body).toMatch(/id="status-data_sale-name">Allowed until [^<:]+<\/p>/);
    expect(page.body).toContain('value="renew:ad_targeting:name"');
    expect(page.body).toContain('value="renew_all"');

    await save(client, {}, 'renew:ad_targeting:name');
    const consents = async () =>
      Object.fromEntries(
        (
          (await call(svc.url, 'GET', `/v1/accounts/${accountId}/consents`, { token: pipeline })).body.consents as {
            purpose: string;
            category: string;
            expiresAt: string;
          }[]
        ).map((c) => [`${c.purpose}:${c.category}`, Date.parse(c.expiresAt)]),
      );
    const renewed = await consents();
    const year = svc.config.catalog.consentTermDays * 86_400_000;
    expect(Math.abs(renewed['ad_targeting:name']! - (Date.now() + year))).toBeLessThan(60_000);
    expect(textOf((await client.get('/choices/saved')).body)).toMatch(
      /Targeted advertising: Your name You renewed it \(allowed until/,
    );

    await save(client, {}, 'renew_all');
    const all = await consents();
    expect(Math.abs(all['data_sale:name']! - (Date.now() + year))).toBeLessThan(60_000);
    const kinds = (
      await svc.sql.query('select kind from consent_events where account_id = $1 order by id', [accountId])
    ).rows.map((r) => r.kind);
    expect(kinds).toEqual(['granted', 'granted', 'renewed', 'renewed', 'renewed']);
  });

  it('an expired permission says so and is not pre-selected', async () => {
    const { client, accountId } = await signedIn();
    await putConsents(svc, admin, accountId, [
      {
        purpose: 'ad_targeting',
        category: 'health',
        choice: 'grant',
        expiresAt: new Date(Date.now() + 300).toISOString(),
      },
    ]);
    await new Promise((r) => setTimeout(r, 400));
    const page = await client.get('/choices');
    expect(page.body).toMatch(/id="status-ad_targeting-health">Expired on \w+ \d+, \d{4}<\/p>/);
    expect(radiosOf(page.body).filter((r) => r.name === 'c:ad_targeting:health' && r.checked)).toEqual([]);
  });

  it('a choice made under a notice that is no longer shown is not recorded', async () => {
    const { client, accountId } = await signedIn();
    const csrf = await client.csrf();
    const r = await client.post('/choices', {
      _csrf: csrf,
      noticeVersion: 'v2',
      action: 'save',
      'c:ad_targeting:name': 'allow',
    });
    expect(r.status).toBe(303);
    expect(r.location).toBe('/choices?noticeChanged=1');
    expect(textOf((await client.get(r.location!)).body)).toContain('Our notice changed while you were choosing.');
    expect(await eventCount(accountId)).toBe(0);
  });

  it('a closed account is told so', async () => {
    const { client, accountId } = await signedIn();
    await call(svc.url, 'POST', '/v1/accounts', {
      token: admin,
      body: { accounts: [{ accountId, status: 'closed' }] },
    });
    const page = await client.get('/choices');
    expect(textOf(page.body)).toContain('This account is closed');
    // Saving is refused, with a page that says why (409), and nothing is recorded.
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
    const r = await client.post('/choices', {
      _csrf: csrf,
      noticeVersion: 'v3',
      action: 'save',
      'c:ad_targeting:name': 'allow',
    });
    expect(r.status).toBe(409);
    expect(textOf(r.body)).toContain('choices cannot be recorded for it until it is re-opened');
    expect(await eventCount(accountId)).toBe(0);
  });
});

describe("the ISP's brand and contacts", () => {
  it('every page names the ISP, shows its logo and colours, and says how to reach it', async () => {
    const { brand } = svc.config;
    const landing = await call(svc.url, 'GET', '/');
    expect(landing.body).toContain(`<span class="provider">${brand.name}</span>`);
    expect(landing.body).toContain('<img class="logo" src="/brand/logo"');
    expect(landing.body).toContain(`href="${brand.contact.phoneHref}"`);
    expect(landing.body).toContain(`href="mailto:${brand.contact.email}"`);
    expect(textOf(landing.body)).toContain(brand.contact.address.join(', '));
    // Getting in is one link away: the ISP's account page gives a new sign-in link.
    expect(landing.body).toContain(`href="${brand.signInUrl}"`);
    const css = await fetch(`${svc.url}/brand.css`);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(await css.text()).toContain(`--accent: ${brand.colours.accent};`);
    const logo = await fetch(`${svc.url}/brand/logo`);
    expect(logo.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(await logo.text()).toMatch(/^<svg /);
  });

  it('a sign-in link that is used or expired offers a new one and the phone number', async () => {
    const { brand } = svc.config;
    const page = await call(svc.url, 'GET', '/login?token=not-a-token');
    expect(page.status).toBe(401);
    expect(page.body).toContain(`href="${brand.signInUrl}"`);
    expect(textOf(page.body)).toContain(`Or call us: ${brand.contact.phone}`);
    const missing = await call(svc.url, 'GET', '/nowhere', { headers: { accept: 'text/html' } });
    expect(missing.status).toBe(404);
    expect(missing.body).toContain('href="/"');
    expect(missing.body).toContain(`href="${brand.contact.phoneHref}"`);
  });
});

describe('receipts', () => {
  it(
    'a change recorded by staff: its receipt names who acted, how they verified the subscriber and the ticket; the ' +
      'choices page names the recipients by legal name',
    async () => {
      const { client, accountId } = await signedIn();
      const put = await putConsents(svc, admin, accountId, [
        { purpose: 'data_sale', category: 'name', choice: 'grant', recipients: ['databroker-one'] },
      ]);
      expect(put.status).toBe(200);
      const { receiptId } = put.body;
      expect(put.body.events[0].receiptUrl).toBe(`${svc.config.portal.baseUrl}/receipts/${receiptId}`);
      const page = textOf((await client.get(`/receipts/${receiptId}`)).body);
      expect(page).toContain('Our staff, on your instruction');
      expect(page).toContain('How we checked it was you Your account PIN');
      expect(page).toContain('Call or ticket CALL-20261203-0042');
      expect(page).toContain('Companies it covers: Data Broker One, Inc.');
      const jws = (await client.get(`/receipts/${receiptId}/receipt.jws`)).body.trim();
      const payload = JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString());
      expect(payload).toMatchObject({
        actor: { type: 'staff', verification: 'account_pin', reference: 'CALL-20261203-0042' },
        changes: [{ recipients: [{ id: 'databroker-one', legalName: 'Data Broker One, Inc.' }] }],
      });
      const choices = textOf((await client.get('/choices')).body);
      expect(choices).toContain('If you allow it, it goes to: Acme Advertising LLC; Data Broker One, Inc.');
      expect(choices).toContain('Allowed for: Data Broker One, Inc.');
      // Renewing in the portal extends the term for the recipients named, and no others.
      await save(client, {}, 'renew:data_sale:name');
      const { rows } = await svc.sql.query(
        "select kind, recipients from consent_events where account_id = $1 and purpose = 'data_sale' order by id",
        [accountId],
      );
      expect(rows).toEqual([
        { kind: 'granted', recipients: ['databroker-one'] },
        { kind: 'renewed', recipients: ['databroker-one'] },
      ]);
    },
  );

  it(
    'the downloaded receipt is a JWS that verifies against /.well-known/jwks.json and says exactly what ' + 'changed',
    async () => {
      const { client, accountId } = await signedIn();
      await save(client, { 'c:third_party_disclosure:precise_geolocation': 'allow' });
      const [receiptId] = receiptIdsOf((await client.get('/choices/saved')).body);
      const { rows } = await svc.sql.query('select * from consent_events where receipt_id = $1', [receiptId]);
      const event = rows[0];

      const download = await client.get(`/receipts/${receiptId}/receipt.jws`);
      expect(download.status).toBe(200);
      expect(download.headers.get('content-disposition')).toMatch(
        new RegExp(`^attachment; filename="?optgate-receipt-${receiptId}\\.jws"?$`),
      );
      const jws = download.body.trim();

      const jwks = await call(svc.url, 'GET', '/.well-known/jwks.json');
      expect(jwks.status).toBe(200);
      const { payload, protectedHeader } = await compactVerify(jws, createLocalJWKSet(jwks.body), {
        algorithms: ['ES256'],
      });
      expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'optgate-receipt+jws', kid: jwks.body.keys[0].kid });
      const receipt = JSON.parse(new TextDecoder().decode(payload));
      const notices = (await call(svc.url, 'GET', '/v1/notices')).body;
      const noticeSha256 = notices.versions.find((v: { version: string }) => v.version === 'v3').sha256;
      expect(receipt).toMatchObject({
        consentReceiptID: receiptId,
        piiPrincipalId: accountId,
        collectionMethod: 'portal',
        actor: { type: 'subscriber' },
        notice: { version: 'v3', sha256: noticeSha256 },
        recordedAt: event.occurred_at.toISOString(),
        changes: [
          {
            eventId: event.event_id,
            change: 'granted',
            purpose: 'third_party_disclosure',
            category: 'precise_geolocation',
            expiresAt: event.expires_at.toISOString(),
            // A grant from the portal covers every registered recipient of an allowed kind, each named.
            recipients: [
              { id: 'acme-ads', legalName: 'Acme Advertising LLC' },
              { id: 'databroker-one', legalName: 'Data Broker One, Inc.' },
              { id: 'cloudproc', legalName: 'CloudProc Analytics Ltd.' },
            ],
          },
        ],
      });
      expect(
        Math.abs(
          Date.parse(receipt.changes[0].expiresAt) -
            Date.parse(receipt.recordedAt) -
            svc.config.catalog.consentTermDays * 86_400_000,
        ),
      ).toBeLessThan(1000);

      // A doctored receipt does not verify.
      const [h, , s] = jws.split('.');
      const forged = `${h}.${b64url({ ...receipt, changes: [{ ...receipt.changes[0], change: 'revoked' }] })}.${s}`;
      await expect(compactVerify(forged, createLocalJWKSet(jwks.body))).rejects.toThrow();

      // The human-readable view shows the same facts and the same signed receipt.
      const view = await client.get(`/receipts/${receiptId}`);
      const text = textOf(view.body);
      for (const fact of [
        'you allowed: Sharing with other companies: Your precise location',
        `Account ${accountId}`,
        'How Here, in the privacy portal',
        'Who You',
        'Notice version v3',
        `Notice SHA-256 ${noticeSha256}`,
      ]) {
        expect(text).toContain(fact);
      }
      expect(text).toMatch(/When \w{3} \d+, \d{4}, \d+:\d\d [AP]M UTC How/);
      expect(view.body).toContain(`href="/receipts/${receiptId}/receipt.jws"`);
      const shown = /<pre class="jws">([^<]+)<\/pre>/.exec(view.body)![1]!;
      expect((await compactVerify(shown, createLocalJWKSet(jwks.body))).payload).toBeTruthy();
    },
  );

  it('the download is labelled application/jose with the receipt type', async () => {
    const { client } = await signedIn();
    await save(client, { 'c:ad_targeting:name': 'allow' });
    const [receiptId] = receiptIdsOf((await client.get('/choices/saved')).body);
    const download = await client.get(`/receipts/${receiptId}/receipt.jws`);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toMatch(/^application\/jose; typ=optgate-receipt\+jws/);
  });

  it('a change from another channel has a receipt too, naming the staff', async () => {
    const { client, accountId } = await signedIn();
    const put = await putConsents(svc, admin, accountId, [
      { purpose: 'ad_targeting', category: 'financial', choice: 'grant' },
    ]);
    const { receiptId } = put.body;
    const eventId = put.body.events[0].eventId;
    // The event's id leads to its act's receipt.
    expect((await client.get(`/receipts/${eventId}`)).location).toBe(`/receipts/${receiptId}`);
    const text = textOf((await client.get(`/receipts/${receiptId}`)).body);
    expect(text).toContain('How By phone, with our staff');
    expect(text).toContain('Who Our staff, on your instruction');
    const jwks = (await call(svc.url, 'GET', '/.well-known/jwks.json')).body;
    const jws = (await client.get(`/receipts/${receiptId}/receipt.jws`)).body;
    const payload = JSON.parse(new TextDecoder().decode((await compactVerify(jws, createLocalJWKSet(jwks))).payload));
    expect(payload).toMatchObject({
      piiPrincipalId: accountId,
      collectionMethod: 'call_center',
      actor: { type: 'staff' },
      changes: [{ eventId, change: 'granted' }],
    });
  });
});

/** A grant of every opt-in category the purpose asks for. */
const grantsOf = (purpose: string) =>
  svc.config.catalog.purposes
    .get(purpose)!
    .categories.filter((c) => svc.config.catalog.categories.get(c)!.regime === 'opt_in')
    .map((category) => ({ purpose, category, choice: 'grant' as const }));

describe('history and activity: newest first, 25 a page', () => {
  it('history pages through more than 25 acts, one entry each, never splitting, losing or repeating one', async () => {
    const { client, accountId } = await signedIn();
    const optIn = grantsOf('product_analytics').map((g) => g.category);
    const single = (i: number) =>
      putConsents(svc, admin, accountId, [
        { purpose: 'product_analytics', category: optIn[i % optIn.length]!, choice: 'grant' },
      ]);
    for (let i = 0; i < 20; i++) await single(i);
    // One act of 200 changes (every opt-in item each purpose asks for granted, revoked, granted again…): more events
    // than the history reads at a time, so the act spans two reads.
    const items = [...svc.config.catalog.purposes.keys()].flatMap(grantsOf);
    const big = Array.from({ length: 200 }, (_, i) => ({
      ...items[i % items.length]!,
      choice: (Math.floor(i / items.length) % 2 ? 'revoke' : 'grant') as 'grant' | 'revoke',
    }));
    expect((await putConsents(svc, admin, accountId, big)).status).toBe(200);
    for (let i = 0; i < 9; i++) await single(i);
    await save(client, {
      'c:product_analytics:demographics': 'deny',
      'c:product_analytics:app_usage_history': 'deny',
    });
    const { rows } = await svc.sql.query(
      'select receipt_id, max(id) as last from consent_events where account_id = $1 group by receipt_id ' +
        'order by last desc',
      [accountId],
    );
    expect(rows).toHaveLength(31);

    const first = await client.get('/history');
    const page1 = receiptIdsOf(first.body);
    expect(page1).toHaveLength(25);
    // Newest first: the portal save leads, both its changes in one entry.
    expect(textOf(first.body)).toMatch(
      new RegExp(
        '^.*?When What changed How Receipt \\S+ \\S+ \\S+ \\S+ [AP]M UTC ' +
          'Improving our products: Demographic information \\(such as age\\): You took it back ' +
          'Improving our products: Apps you use: You took it back Here, in the privacy portal',
      ),
    );
    // The big act is one entry, whole.
    const rowOf = (html: string, id: string) => new RegExp(`<tr>(?:(?!</tr>)[\\s\\S])*${id}`).exec(html)![0];
    const bigId = rows[10].receipt_id;
    expect(page1[10]).toBe(bigId);
    expect(rowOf(first.body, bigId).match(/<li>/g)).toHaveLength(200);
    expect(first.body).not.toContain('Newest changes');
    const older = /href="(\/history\?before=\d+)">Older changes</.exec(first.body)?.[1];
    expect(older).toBeTruthy();
    const second = await client.get(older!);
    const page2 = receiptIdsOf(second.body);
    expect(page2).toHaveLength(rows.length - 25);
    expect(second.body).toContain('href="/history">Newest changes<');
    expect(second.body).not.toContain('Older changes');
    expect([...page1, ...page2]).toEqual(rows.map((r) => r.receipt_id));
  });

  // A full page must not offer an empty older page (which would say, untruly, that there are no changes).
  it('exactly 25 acts: no link to an empty older page', async () => {
    const { client, accountId } = await signedIn();
    const optIn = grantsOf('data_sale').map((g) => g.category);
    const targeting = grantsOf('ad_targeting');
    await putConsents(svc, admin, accountId, targeting);
    for (let i = 0; i < 24; i++) {
      await putConsents(svc, admin, accountId, [
        { purpose: 'data_sale', category: optIn[i % optIn.length]!, choice: 'grant' },
      ]);
    }
    expect(await eventCount(accountId)).toBe(targeting.length + 24);
    const first = await client.get('/history');
    expect(receiptIdsOf(first.body)).toHaveLength(25);
    expect(first.body).not.toContain('Older changes');
  });

  it(
    'activity shows each decision made through the API: who asked, for what, the answer and why; newest first, ' +
      'paginated',
    async () => {
      const { client, accountId } = await signedIn();
      await putConsents(svc, admin, accountId, [
        { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
      ]);
      const other = await createAccount(svc, admin);
      await decide(svc, pipeline, { accountId: other, purpose: 'ad_targeting', categories: ['name'] });

      const empty = await client.get('/activity');
      expect(textOf(empty.body)).toContain('No system has asked to use your data yet.');

      const allowed = await decision(accountId, 'ad_targeting', ['web_browsing_history']);
      expect(allowed.allow).toBe(true);
      const one = textOf((await client.get('/activity')).body);
      expect(one).toMatch(
        new RegExp(
          'Allowed \\S+ [AP]M UTC Our advertising system asked to use “Websites you visit” for ' +
            '“Targeted advertising”, and we allowed it\\. You had allowed this\\. Questions about your privacy\\?',
        ),
      );

      // 30 more, each a distinct (purpose, category) so that the order can be checked.
      const categories = [...svc.config.catalog.categories.keys()];
      const asked: string[] = [];
      for (let i = 0; i < 30; i++) {
        const purpose = i % 2 ? 'data_sale' : 'product_analytics';
        const category = categories[i % categories.length]!;
        const d = await decide(svc, pipeline, {
          accountId,
          purpose,
          categories: [category],
          ...recipientFor(svc, purpose),
        });
        expect(d.status).toBe(200);
        asked.push(`${purpose}:${category}:${d.body.allow ? 'allow' : 'deny'}:${d.body.results[0].reason}`);
      }
      await decide(svc, pipeline, { accountId, purpose: 'fraud_protection', categories: ['ip_addresses'] });

      // Each entry: the answer and its time, the sentence, the reasons.
      const rowsOf = (html: string) =>
        [...html.matchAll(/<li class="entry [a-z]+">([\s\S]*?)<\/li>/g)].map((m) =>
          [...m[1]!.matchAll(/<p[^>]*>([\s\S]*?)<\/p>/g)].map((c) => textOf(c[1]!)),
        );
      const first = await client.get('/activity');
      const rows1 = rowsOf(first.body);
      expect(rows1).toHaveLength(25);
      // The newest: an exception, allowed by law.
      expect(rows1[0]!.slice(1)).toEqual([
        `Our advertising system asked to use “${label('categories.ip_addresses.label')}” for ` +
          '“Protecting you, us and others against fraud, abuse and unlawful use”, and we allowed it.',
        'The law allows this without your permission.',
      ]);
      // Then the 30, newest first.
      const reason: Record<string, string> = {
        no_consent: 'You had not allowed this.',
        not_opted_out: 'You had not said no to this.',
      };
      const expected = [...asked].reverse().map((a) => {
        const [p, c, outcome, why] = a.split(':') as [string, string, string, string];
        const answer = outcome === 'allow' ? 'we allowed it.' : 'we refused.';
        const information = `“${label(`categories.${c}.label`)}”`;
        // A sale names its recipient, by legal name.
        return [
          outcome === 'allow' ? 'Allowed' : 'Refused',
          p === 'data_sale'
            ? `Our advertising system asked to share ${information} with Acme Advertising LLC for ` +
              `“${label(`purposes.${p}.label`)}”, and ${answer}`
            : `Our advertising system asked to use ${information} for “${label(`purposes.${p}.label`)}”, and ${answer}`,
          reason[why],
        ];
      });
      const answerOf = (r: string[]) => [r[0]!.split(' ')[0]!, ...r.slice(1)];
      expect(rows1.slice(1).map(answerOf)).toEqual(expected.slice(0, 24));
      const older = /href="(\/activity\?before=[A-Za-z0-9_-]+)">Older</.exec(first.body)?.[1];
      expect(older).toBeTruthy();
      const second = await client.get(older!);
      const rows2 = rowsOf(second.body);
      expect(rows2).toHaveLength(32 - 25);
      expect(rows2.slice(0, 6).map(answerOf)).toEqual(expected.slice(24));
      expect(answerOf(rows2.at(-1)!)).toEqual([
        'Allowed',
        'Our advertising system asked to use “Websites you visit” for “Targeted advertising”, and we allowed it.',
        'You had allowed this.',
      ]);
      expect(second.body).toContain('href="/activity">Newest<');
      // The other account's decision is nowhere.
      expect([...rows1, ...rows2].filter((r) => r[1]!.includes('“Your name” for “Targeted advertising”'))).toEqual([]);
      // A cursor the service did not issue is a validation problem (422, as in the API), shown as a page.
      const bad = await client.get('/activity?before=bogus');
      expect(bad.status).toBe(422);
      expect(textOf(bad.body)).toContain('We could not read what you sent.');
    },
  );
});

/** An English label from the message catalog. */
const label = (key: string) => {
  const text = svc.config.messages.lookup('en', key);
  if (typeof text !== 'string') throw new Error(`no message ${key}`);
  return text;
};
