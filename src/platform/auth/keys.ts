import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  createLocalJWKSet,
  createRemoteJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';
import type { AppConfig } from '../config';

/**
 * The service's keys. `signing` signs what optgate vouches for (receipts, audit checkpoints,
 * export manifests, development tokens); its public half is served at /.well-known/jwks.json.
 * `verifyToken` is where caller tokens are checked: the identity provider's JWKS in
 * production, the local development key otherwise. In development the key pair and the evidence
 * secret are generated once into the git-ignored keys folder; production must configure them.
 */
export interface ServiceKeys {
  readonly signing: { readonly key: CryptoKey; readonly kid: string; readonly alg: string };
  readonly publicJwks: JSONWebKeySet;
  readonly verifyToken: JWTVerifyGetKey;
  /** HMAC key for evidence (IP address, user agent): stored only as keyed hashes. */
  readonly evidenceKey: Buffer;
}

const SIGNING_ALG = 'ES256';

export async function loadKeys(auth: AppConfig['auth'], env: AppConfig['env']): Promise<ServiceKeys> {
  const privateJwk: JWK = auth.signingKeyFile
    ? readJson(auth.signingKeyFile, 'SIGNING_KEY_FILE')
    : await developmentSigningKey(auth.keysDir, env);
  const alg = privateJwk.alg ?? SIGNING_ALG;
  const kid = privateJwk.kid ?? (await calculateJwkThumbprint(privateJwk));
  const key = (await importJWK(privateJwk, alg)) as CryptoKey;
  // The current key, then the keys it replaced (marked retired): what they signed still verifies.
  const retired = readRetired(auth.retiredKeysFile).filter((k) => k.kid !== kid);
  const publicJwks: JSONWebKeySet = { keys: [{ ...publicOf(privateJwk), kid, alg, use: 'sig' }, ...retired] };

  let verifyToken: JWTVerifyGetKey;
  if (auth.jwksUrl)
    verifyToken = createRemoteJWKSet(new URL(auth.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
  else if (auth.jwksFile) verifyToken = createLocalJWKSet(readJson(auth.jwksFile, 'JWKS_FILE'));
  else verifyToken = createLocalJWKSet(publicJwks);

  const evidenceKey = auth.evidenceHmacKey
    ? Buffer.from(auth.evidenceHmacKey, 'utf8')
    : Buffer.from(developmentSecret(auth.keysDir, 'evidence-hmac.key', env), 'utf8');
  return { signing: { key, kid, alg }, publicJwks, verifyToken, evidenceKey };
}

const publicOf = (jwk: JWK): JWK => {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
};

/** A retired key: its public half, `status: "retired"` and when (`retiredAt`); jose ignores both members. */
export type RetiredJwk = JWK & { readonly status: 'retired'; readonly retiredAt: string };

function readRetired(file: string): RetiredJwk[] {
  const text = tryRead(file);
  if (!text) return [];
  const jwks = (() => {
    try {
      return JSON.parse(text) as JSONWebKeySet;
    } catch (err) {
      throw new Error(`retired keys: cannot read ${file}: ${(err as Error).message}`);
    }
  })();
  if (!Array.isArray(jwks.keys)) throw new Error(`retired keys: ${file} holds no "keys" array`);
  return jwks.keys.map((k) => ({ ...publicOf(k), status: 'retired', retiredAt: String((k as RetiredJwk).retiredAt) }));
}

/**
 * Replaces the signing key with a new one (`optgate keys rotate`): the current key's public half is
 * added to the retired keys first (so that nothing it signed ever loses its key), then the new
 * private key replaces it, each file written whole and renamed into place. Instances sign with the
 * key they loaded until they restart; both keys are in the JWKS meanwhile.
 */
export async function rotateSigningKey(
  auth: AppConfig['auth'],
  env: AppConfig['env'],
  now: Date,
): Promise<{ retiredKid: string; kid: string }> {
  const file = auth.signingKeyFile ?? path.join(auth.keysDir, 'signing.jwk.json');
  const current: JWK = auth.signingKeyFile
    ? readJson(auth.signingKeyFile, 'SIGNING_KEY_FILE')
    : await developmentSigningKey(auth.keysDir, env);
  const retiredKid = current.kid ?? (await calculateJwkThumbprint(current));
  const alg = current.alg ?? SIGNING_ALG;
  const retired = readRetired(auth.retiredKeysFile).filter((k) => k.kid !== retiredKid);
  retired.push({
    ...publicOf(current),
    kid: retiredKid,
    alg,
    use: 'sig',
    status: 'retired',
    retiredAt: now.toISOString(),
  });
  replaceFile(auth.retiredKeysFile, JSON.stringify({ keys: retired }, null, 2));

  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  replaceFile(file, JSON.stringify({ ...jwk, alg, kid }, null, 2));
  return { retiredKid, kid };
}

/** Writes a file whole, then renames it over the old one: a reader sees the old content or the new, never half. */
function replaceFile(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, file);
}

function readJson<T>(file: string, name: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    throw new Error(`${name}: cannot read ${file}: ${(err as Error).message}`);
  }
}

async function developmentSigningKey(dir: string, env: AppConfig['env']): Promise<JWK> {
  const file = path.join(dir, 'signing.jwk.json');
  const existing = tryRead(file);
  if (existing) return JSON.parse(existing) as JWK;
  assertNotProduction(env);
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const content = JSON.stringify({ ...jwk, alg: SIGNING_ALG, kid: await calculateJwkThumbprint(jwk) }, null, 2);
  return JSON.parse(createOnce(file, content)) as JWK;
}

function developmentSecret(dir: string, name: string, env: AppConfig['env']): string {
  const file = path.join(dir, name);
  const existing = tryRead(file);
  if (existing) return existing.trim();
  assertNotProduction(env);
  return createOnce(file, randomBytes(32).toString('base64url')).trim();
}

function assertNotProduction(env: AppConfig['env']) {
  if (env === 'production') throw new Error('refusing to generate keys in production: configure them');
}

function tryRead(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Writes `content` to `file` unless it exists, atomically: several instances starting at once
 * must all end up with the same key. Returns what the file holds.
 */
function createOnce(file: string, content: string): string {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  return readFileSync(file, 'utf8');
}
