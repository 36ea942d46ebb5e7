import type { Redis } from 'ioredis';
import { errors as joseErrors } from 'jose';
import type { AccountService } from '../accounts';
import type { TokenVerifier } from '../platform/auth/tokens';
import { AppError, type ProblemType } from '../platform/errors';
import { firstUse, hashed, underLimit } from '../platform/sessions';
import { ACCOUNT_ID } from '../platform/vocabulary';
import type { PortalSession, PortalSessions } from './session';

export type SignInProblem = 'invalid' | 'expired' | 'used' | 'unknownAccount' | 'missing' | 'tooMany';

const PROBLEM_TYPES: Record<SignInProblem, ProblemType> = {
  missing: 'bad-request',
  invalid: 'unauthenticated',
  expired: 'unauthenticated',
  used: 'unauthenticated',
  unknownAccount: 'unauthenticated',
  tooMany: 'too-many-requests',
};

/** A sign-in that did not happen, with the reason the page explains (`signIn.<problem>` in the messages). */
export class SignInError extends AppError {
  constructor(readonly problem: SignInProblem) {
    super(PROBLEM_TYPES[problem], `sign-in refused: ${problem}`);
  }
}

export interface SignInDeps {
  readonly redis: Redis;
  /** Namespace of this deployment's Redis keys. */
  readonly prefix: string;
  readonly tokens: TokenVerifier;
  readonly accounts: AccountService;
  readonly sessions: PortalSessions;
  readonly clock: () => Date;
  /** Required `aud` of sign-in tokens. */
  readonly audience: string;
  /** Sign-in attempts per client address per minute. */
  readonly perMinute: number;
}

/** Signs a subscriber in with a short-lived, single-use token from the ISP's identity provider. */
export class SignInService {
  constructor(private readonly deps: SignInDeps) {}

  /**
   * Checks the token (rate limit per address, signature and claims, single use, the account
   * exists) and opens a new session, ending `previous` if there was one: a session id planted
   * before sign-in is worthless.
   */
  async signIn(token: string | undefined, clientAddress: string, previous?: PortalSession): Promise<PortalSession> {
    const { redis, prefix, sessions } = this.deps;
    if (!token) throw new SignInError('missing');
    const now = this.deps.clock().getTime();
    const limitKey = `${prefix}:portal:signin:${hashed(clientAddress)}`;
    if (!(await underLimit(redis, limitKey, this.deps.perMinute, 60_000))) throw new SignInError('tooMany');
    const claims = await this.verify(token);
    const accountId = claims.sub;
    if (!(await firstUse(redis, `${prefix}:portal:jti:${hashed(claims.jti)}`, claims.exp * 1000 - now))) {
      throw new SignInError('used');
    }
    await this.deps.accounts.require(accountId).catch((err: unknown) => {
      throw err instanceof AppError && err.type === 'not-found' ? new SignInError('unknownAccount') : err;
    });
    if (previous) await sessions.destroy(previous.id);
    return sessions.create({ accountId });
  }

  private async verify(token: string): Promise<{ sub: string; jti: string; exp: number }> {
    try {
      const payload = await this.deps.tokens.verifyJwt(token, {
        audience: this.deps.audience,
        requiredClaims: ['exp', 'iat', 'sub', 'jti'],
        maxTokenAge: '15m',
      });
      const { sub, jti, exp } = payload as { sub: string; jti: string; exp: number };
      if (!ACCOUNT_ID.test(sub)) throw new SignInError('invalid');
      return { sub, jti, exp };
    } catch (err) {
      if (err instanceof SignInError) throw err;
      throw new SignInError(err instanceof joseErrors.JWTExpired ? 'expired' : 'invalid');
    }
  }
}
