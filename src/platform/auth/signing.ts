import { CompactSign, compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { z } from 'zod';
import type { ServiceKeys } from './keys';

/**
 * The one list of signature algorithms optgate accepts, for caller tokens, sign-in tokens and the
 * documents it signed itself. Asymmetric only: a token "signed" with HS256 and a public key, or
 * with `alg: none`, is refused.
 */
export const ACCEPTED_ALGORITHMS = [
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
];

/** What optgate vouches for (checkpoints, manifests, receipts) is signed as a compact JWS with the service key. */
export async function signJws(keys: ServiceKeys, payload: object, typ: string): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ })
    .sign(keys.signing.key);
}

/**
 * Verifies a JWS against a JWKS (offline: a file the verifier trusts), checks its type, and parses
 * its payload with `schema`. Throws when any of these fails.
 */
export async function verifyJws<S extends z.ZodType>(
  jws: string,
  jwks: JSONWebKeySet,
  typ: string,
  schema: S,
): Promise<{ payload: z.infer<S>; kid: string | undefined }> {
  const { payload, protectedHeader } = await compactVerify(jws, createLocalJWKSet(jwks), {
    algorithms: ACCEPTED_ALGORITHMS,
  });
  if (protectedHeader.typ !== typ) throw new Error(`expected a ${typ}, got ${protectedHeader.typ ?? 'no type'}`);
  const parsed = schema.safeParse(JSON.parse(new TextDecoder().decode(payload)));
  if (!parsed.success) throw new Error(`the signed payload is not a ${typ}: ${parsed.error.issues[0]?.message}`);
  return { payload: parsed.data, kid: protectedHeader.kid };
}
