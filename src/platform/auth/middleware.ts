import type { RequestHandler, Response } from 'express';
import { AppError } from '../errors';
import type { Principal, Scope } from './principal';
import type { TokenVerifier } from './tokens';

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)$/;

export const principalOf = (res: Response): Principal => {
  const p = res.locals.principal as Principal | undefined;
  if (!p) throw new AppError('unauthenticated', 'Authentication required.');
  return p;
};

/** Requires a valid bearer token carrying at least one of `scopes`. */
export function requireScope(verifier: TokenVerifier, ...scopes: Scope[]): RequestHandler {
  return async (req, res, next) => {
    const match = BEARER.exec(req.get('authorization') ?? '');
    if (!match) {
      throw new AppError('unauthenticated', 'Send Authorization: Bearer <token>.', undefined, {
        'www-authenticate': 'Bearer',
      });
    }
    const principal = await verifier.verify(match[1]!);
    if (!scopes.some((s) => principal.scopes.has(s))) {
      throw new AppError(
        'forbidden',
        `This token lacks the scope this endpoint needs (${scopes.join(' or ')}).`,
        undefined,
        {
          'www-authenticate': `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"`,
        },
      );
    }
    res.locals.principal = principal;
    next();
  };
}

/** A client may ask only about the purposes its token lists. */
export function assertPurposeAllowed(principal: Principal, purpose: string): void {
  if (!principal.purposes.has(purpose)) {
    throw new AppError('forbidden', `This client is not entitled to ask about purpose "${purpose}".`);
  }
}
