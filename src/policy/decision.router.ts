import { Router } from 'express';
import { z } from 'zod';
import { ACCOUNT_ID } from '../accounts/account.service';
import { principalOf, requireScope } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { jsonBody } from '../platform/http/middleware';
import { parse } from '../platform/http/validate';
import type { DecisionService } from './decision.service';

const accountId = z.string().regex(ACCOUNT_ID, 'must be 1–64 letters, digits, ".", "_" or "-"');
const common = {
  purpose: z.string().min(1).max(64),
  categories: z.array(z.string().min(1).max(64)).min(1).max(100),
  recipient: z.string().min(1).max(256).optional(),
  reference: z.string().min(1).max(256).optional(),
};
const single = z.strictObject({ accountId, ...common });
// No upper bound here: the service answers 413 past its limit.
const batch = z.strictObject({ accountIds: z.array(accountId).min(1), ...common });

export function decisionRouter(decisions: DecisionService, verifier: TokenVerifier): Router {
  const router = Router();
  const auth = requireScope(verifier, 'decisions');

  router.post('/v1/decisions', auth, jsonBody('64kb'), async (req, res) => {
    res.json(await decisions.decide(principalOf(res), parse(single, req.body)));
  });

  // 10,000 account ids of up to 64 characters fit in 1 MB; 2 MB leaves room for the rest.
  router.post('/v1/decisions/batch', auth, jsonBody('2mb'), async (req, res) => {
    res.json(await decisions.decideBatch(principalOf(res), parse(batch, req.body)));
  });

  return router;
}
