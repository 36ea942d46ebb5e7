import { type CryptoKey, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { loadKeys } from '../../src/platform/auth/keys';
import { issueToken } from '../../src/platform/auth/tokens';
import { adminToken, createAccount, decide } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/** Security: every way a token can be wrong is 401; a right token without the scope or purpose is 403. */

let svc: TestService;
let accountId: string;

beforeAll(async () => {
  svc = await startTestService();
  accountId = await createAccount(svc, await adminToken(svc));
});
afterAll(() => svc.stop());

const publicJwks = async () =>
  (await (await fetch(`${svc.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };

const body = () => ({ accountId, purpose: 'fraud_protection', categories: ['ip_addresses'] });

async function forged(
  o: { issuer?: string; audience?: string; exp?: number; key?: CryptoKey; alg?: string; kid?: string } = {},
) {
  const kid = o.kid ?? (await publicJwks()).keys[0]!.kid;
  const key = o.key ?? (await generateKeyPair('ES256')).privateKey;
  return new SignJWT({ scope: 'decisions', purposes: ['fraud_protection'] })
    .setProtectedHeader({ alg: o.alg ?? 'ES256', kid })
    .setIssuer(o.issuer ?? svc.config.auth.issuer)
    .setAudience(o.audience ?? svc.config.auth.audience)
    .setSubject('intruder')
    .setIssuedAt()
    .setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 600)
    .sign(key);
}

describe('401: the token is not acceptable', () => {
  const expect401 = async (headers: Record<string, string>) => {
    const r = await call(svc.url, 'POST', '/v1/decisions', { body: body(), headers });
    expect(r.status).toBe(401);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(r.body).toMatchObject({ type: 'urn:optgate:problem:unauthenticated', status: 401 });
    expect(r.body.allow).toBeUndefined();
  };

  it('no Authorization header', () => expect401({}));
  it('not a bearer token', () => expect401({ authorization: 'Basic dXNlcjpwYXNz' }));
  it('garbage', () => expect401({ authorization: 'Bearer not-a-jwt' }));
  it('signed by another key under the known kid', async () => expect401({ authorization: `Bearer ${await forged()}` }));
  it('alg: none', async () => {
    const unsigned = new UnsecuredJWT({ scope: 'decisions', purposes: ['fraud_protection'] })
      .setIssuer(svc.config.auth.issuer)
      .setAudience(svc.config.auth.audience)
      .setSubject('intruder')
      .setExpirationTime('10m')
      .encode();
    await expect401({ authorization: `Bearer ${unsigned}` });
  });
  it('HS256 signed with the public key (algorithm confusion)', async () => {
    const jwks = await publicJwks();
    const secret = new TextEncoder().encode(JSON.stringify(jwks.keys[0]));
    const token = await new SignJWT({ scope: 'decisions', purposes: ['fraud_protection'] })
      .setProtectedHeader({ alg: 'HS256', kid: jwks.keys[0]!.kid })
      .setIssuer(svc.config.auth.issuer)
      .setAudience(svc.config.auth.audience)
      .setSubject('intruder')
      .setExpirationTime('10m')
      .sign(secret);
    await expect401({ authorization: `Bearer ${token}` });
  });
  it('wrong issuer', async () => {
    const real = await svc.token('decisions', ['fraud_protection']);
    expect((await call(svc.url, 'POST', '/v1/decisions', { token: real, body: body() })).status).toBe(200);
    const keys = await loadKeys(svc.config.auth, svc.config.env);
    const wrongIssuer = await issueToken(
      keys,
      { issuer: 'someone-else', audience: svc.config.auth.audience },
      { subject: 'x', scopes: ['decisions'], purposes: ['fraud_protection'], ttlSeconds: 60 },
    );
    await expect401({ authorization: `Bearer ${wrongIssuer}` });
    const wrongAudience = await issueToken(keys, svc.config.auth, {
      subject: 'x',
      scopes: ['decisions'],
      purposes: ['fraud_protection'],
      ttlSeconds: 60,
      audience: 'another-service',
    });
    await expect401({ authorization: `Bearer ${wrongAudience}` });
  });
  it('expired', async () => {
    const keys = await loadKeys(svc.config.auth, svc.config.env);
    const past = Math.floor(Date.now() / 1000) - 120;
    const expired = await new SignJWT({ scope: 'decisions', purposes: ['fraud_protection'] })
      .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid })
      .setIssuer(svc.config.auth.issuer)
      .setAudience(svc.config.auth.audience)
      .setSubject('late')
      .setIssuedAt(past - 600)
      .setExpirationTime(past)
      .sign(keys.signing.key);
    await expect401({ authorization: `Bearer ${expired}` });
    const r = await call(svc.url, 'POST', '/v1/decisions', {
      body: body(),
      headers: { authorization: `Bearer ${expired}` },
    });
    expect(r.body.detail).toMatch(/expired/);
  });
  it('a payload altered after signing', async () => {
    const real = await svc.token('decisions', ['ad_targeting']);
    const [h, p, s] = real.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    claims.purposes = ['fraud_protection'];
    await expect401({ authorization: `Bearer ${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}` });
  });
});

describe('403: authenticated but not entitled', () => {
  it('a token without the needed scope', async () => {
    const token = await svc.token('consents:write', ['fraud_protection']);
    const r = await decide(svc, token, body());
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ type: 'urn:optgate:problem:forbidden' });
    expect(
      (
        await call(svc.url, 'POST', '/v1/accounts', {
          token,
          body: { accounts: [{ accountId: 'x', status: 'active' }] },
        })
      ).status,
    ).toBe(403);
    expect(
      (
        await call(svc.url, 'PUT', `/v1/accounts/${accountId}/consents`, {
          token: await svc.token('decisions'),
          body: {},
        })
      ).status,
    ).toBe(403);
  });

  it("a purpose outside the token's purposes claim: exceptions stay with the pipelines entitled to them", async () => {
    const adTech = await svc.token('decisions', ['ad_targeting']);
    const r = await decide(svc, adTech, body());
    expect(r.status).toBe(403);
    expect(r.body.detail).toMatch(/fraud_protection/);
    const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: adTech,
      body: { purpose: 'fraud_protection', categories: ['ip_addresses'], accountIds: [accountId] },
    });
    expect(batch.status).toBe(403);
  });

  it('a token with no purposes claim may ask about nothing', async () => {
    const r = await decide(svc, await svc.token('decisions', []), body());
    expect(r.status).toBe(403);
  });
});
