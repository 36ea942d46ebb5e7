import { type JWTPayload, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { AppError } from '../errors';
import type { ServiceKeys } from './keys';
import type { Principal } from './principal';
import { ACCEPTED_ALGORITHMS } from './signing';

const CACHE_LIMIT = 10_000;
const CACHE_TTL_MS = 60_000;

export interface TokenSettings {
  readonly issuer: string;
  readonly audience: string;
}

export interface TokenVerifierDeps {
  readonly keys: ServiceKeys;
  readonly settings: TokenSettings;
  readonly clock: () => Date;
}

/**
 * Verifies tokens with jose: API callers' bearer tokens and, through `verifyJwt`, sign-in tokens.
 * A verified bearer token is remembered for at most a minute (and never past its own expiry), so
 * that a pipeline's steady stream of calls does not pay a signature check each time.
 */
export class TokenVerifier {
  private readonly cache = new Map<string, { principal: Principal; until: number }>();

  constructor(private readonly deps: TokenVerifierDeps) {}

  /**
   * The one JWT check: signature by a trusted key with an accepted algorithm, issuer, `audience`,
   * expiry and the required claims, at the injected clock's time. Throws jose's errors.
   */
  async verifyJwt(
    token: string,
    o: { readonly audience: string; readonly requiredClaims: string[]; readonly maxTokenAge?: string },
  ): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, this.deps.keys.verifyToken, {
      issuer: this.deps.settings.issuer,
      audience: o.audience,
      algorithms: ACCEPTED_ALGORITHMS,
      requiredClaims: o.requiredClaims,
      maxTokenAge: o.maxTokenAge,
      currentDate: this.deps.clock(),
    });
    return payload;
  }

  /** An API caller's bearer token, as the principal it names; 401 when it does not verify. */
  async verify(token: string): Promise<Principal> {
    const now = this.deps.clock().getTime();
    const hit = this.cache.get(token);
    if (hit && now < hit.until) return hit.principal;
    if (hit) this.cache.delete(token);

    let payload: JWTPayload;
    try {
      payload = await this.verifyJwt(token, { audience: this.deps.settings.audience, requiredClaims: ['exp', 'sub'] });
    } catch (err) {
      throw new AppError('unauthenticated', describe(err), undefined, {
        'www-authenticate': 'Bearer error="invalid_token"',
      });
    }
    const principal: Principal = {
      clientId: String(payload.sub),
      scopes: new Set(typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : []),
      purposes: new Set(
        Array.isArray(payload.purposes) ? payload.purposes.filter((p): p is string => typeof p === 'string') : [],
      ),
      subscriberChannel: payload.subscriber_channel === true,
    };
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(token, { principal, until: Math.min(now + CACHE_TTL_MS, (payload.exp ?? 0) * 1000) });
    return principal;
  }
}

function describe(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'The token has expired.';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `The token's "${err.claim}" claim is not accepted.`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'The token is signed with an algorithm that is not accepted.';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'The token signature is not valid.';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'The token is not signed by a known key.';
  return 'The token is not valid.';
}

export interface IssueTokenOptions {
  readonly subject: string;
  readonly scopes: readonly string[];
  readonly purposes: readonly string[];
  readonly ttlSeconds: number;
  readonly audience?: string;
  readonly jti?: string;
  readonly extraClaims?: Record<string, unknown>;
}

/** Signs a token with the service key: development tokens from the CLI, portal sign-in links. */
export function issueToken(keys: ServiceKeys, settings: TokenSettings, o: IssueTokenOptions): Promise<string> {
  return new SignJWT({ ...o.extraClaims, scope: o.scopes.join(' '), purposes: [...o.purposes] })
    .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ: 'JWT' })
    .setIssuer(settings.issuer)
    .setAudience(o.audience ?? settings.audience)
    .setSubject(o.subject)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + o.ttlSeconds)
    .setJti(o.jti ?? crypto.randomUUID())
    .sign(keys.signing.key);
}
