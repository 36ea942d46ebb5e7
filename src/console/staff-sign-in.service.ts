import type { Redis } from 'ioredis';
import { errors as joseErrors } from 'jose';
import type { AuditService } from '../audit';
import type { TokenVerifier } from '../platform/auth/tokens';
import { AppError, type ProblemType } from '../platform/errors';
import { firstUse, hashed, underLimit } from '../platform/sessions';
import { type StaffRole, staffRole } from '../platform/vocabulary';
import type { StaffSession, StaffSessions } from './staff-session';

export type StaffSignInProblem = 'missing' | 'invalid' | 'expired' | 'used' | 'notStaff' | 'tooMany';

const PROBLEM_TYPES: Record<StaffSignInProblem, ProblemType> = {
  missing: 'bad-request',
  invalid: 'unauthenticated',
  expired: 'unauthenticated',
  used: 'unauthenticated',
  notStaff: 'forbidden',
  tooMany: 'too-many-requests',
};

/** A console sign-in that did not happen, with the reason its page explains. */
export class StaffSignInError extends AppError {
  constructor(readonly problem: StaffSignInProblem) {
    super(PROBLEM_TYPES[problem], `console sign-in refused: ${problem}`);
  }
}

export interface StaffSignInDeps {
  readonly redis: Redis;
  readonly prefix: string;
  readonly tokens: TokenVerifier;
  readonly sessions: StaffSessions;
  readonly audit: AuditService;
  readonly clock: () => Date;
  /** Required `aud` of console sign-in tokens (`optgate-console`). */
  readonly audience: string;
  /** Sign-in attempts per client address per minute. */
  readonly perMinute: number;
}

/** A staff id as the identity provider names its users: printable, no spaces at either end, at most 128. */
const STAFF_ID = /^[\x21-\x7e][\x20-\x7e]{0,126}[\x21-\x7e]$|^[\x21-\x7e]$/;

/**
 * Signs staff in to the compliance console with a short-lived, single-use token from the ISP's
 * identity provider: audience `optgate-console`, the staff id in `sub`, and a `roles` claim
 * naming `compliance` or `support` (compliance wins when it names both). A token for anyone else
 * (a subscriber's portal link, an API caller's token) is refused as not staff (403).
 */
export class StaffSignInService {
  constructor(private readonly deps: StaffSignInDeps) {}

  async signIn(token: string | undefined, clientAddress: string, previous?: StaffSession): Promise<StaffSession> {
    const { redis, prefix, sessions } = this.deps;
    if (!token) throw new StaffSignInError('missing');
    const now = this.deps.clock().getTime();
    if (!(await underLimit(redis, `${prefix}:console:signin:${hashed(clientAddress)}`, this.deps.perMinute, 60_000))) {
      throw new StaffSignInError('tooMany');
    }
    const claims = await this.verify(token);
    if (!(await firstUse(redis, `${prefix}:console:jti:${hashed(claims.jti)}`, claims.exp * 1000 - now))) {
      throw new StaffSignInError('used');
    }
    if (previous) await sessions.destroy(previous.id);
    const session = await sessions.create({ staffId: claims.sub, role: claims.role });
    await this.deps.audit.recordStaffAction({ action: 'console_signed_in', actor: claims.sub, role: claims.role });
    return session;
  }

  private async verify(token: string): Promise<{ sub: string; jti: string; exp: number; role: StaffRole }> {
    let payload: Record<string, unknown>;
    try {
      payload = await this.deps.tokens.verifyJwt(token, {
        audience: this.deps.audience,
        requiredClaims: ['exp', 'iat', 'sub', 'jti'],
        maxTokenAge: '15m',
      });
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new StaffSignInError('expired');
      // A genuine token meant for something else (the portal, the API): not a staff member's.
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') {
        throw new StaffSignInError('notStaff');
      }
      throw new StaffSignInError('invalid');
    }
    const { sub, jti, exp, roles } = payload as { sub: string; jti: string; exp: number; roles?: unknown };
    if (!STAFF_ID.test(sub)) throw new StaffSignInError('invalid');
    const named = Array.isArray(roles) ? roles.filter((r) => staffRole.safeParse(r).success) : [];
    const role = named.includes('compliance') ? 'compliance' : named.includes('support') ? 'support' : undefined;
    if (!role) throw new StaffSignInError('notStaff');
    return { sub, jti, exp, role };
  }
}
