import { CompactSign, compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { ServiceKeys } from './keys';

/** What optgate vouches for (checkpoints, manifests, receipts) is signed as a compact JWS with the service key. */
export async function signJws(keys: ServiceKeys, payload: object, typ: string): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ })
    .sign(keys.signing.key);
}

/**
 * Verifies a JWS against a JWKS (offline: a file the verifier trusts) and returns its payload. Throws when it does not
 * verify.
 */
export async function verifyJws<T>(
  jws: string,
  jwks: JSONWebKeySet,
  typ: string,
): Promise<{ payload: T; kid: string | undefined }> {
  const { payload, protectedHeader } = await compactVerify(jws, createLocalJWKSet(jwks), {
    algorithms: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'],
  });
  if (protectedHeader.typ !== typ) throw new Error(`expected a ${typ}, got ${protectedHeader.typ ?? 'no type'}`);
  return { payload: JSON.parse(new TextDecoder().decode(payload)) as T, kid: protectedHeader.kid };
}
