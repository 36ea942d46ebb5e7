import { Router } from 'express';
import { z } from 'zod';
import { accountIdSchema as accountId } from '../accounts/account.service';
import { principalOf, requireScope } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { jsonBody, requestIdOf } from '../platform/http/middleware';
import { parse } from '../platform/http/validate';
import type { DecisionService } from './decision.service';

// Free text goes into the audit record: no control characters.
const printable = z.string().min(1).max(256).regex(/^[^\p{Cc}]+$/u, 'must not contain control characters');
const common = {
  purpose: z.string().min(1).max(64),
  categories: z.array(z.string().min(1).max(64)).min(1).max(100),
  recipient: printable.optional(),
  reference: printable.optional(),
};
export const decisionRequestSchema = z.strictObject({ accountId, ...common });
// No upper bound here: the service answers 413 past its limit.
export const batchRequestSchema = z.strictObject({ accountIds: z.array(accountId).min(1), ...common });

export function decisionRouter(decisions: DecisionService, verifier: TokenVerifier): Router {
  const router = Router();
  const auth = requireScope(verifier, 'decisions');

  router.post('/v1/decisions', auth, jsonBody('64kb'), async (req, res) => {
    res.json(await decisions.decide({ principal: principalOf(res), requestId: requestIdOf(res) }, parse(decisionRequestSchema, req.body)));
  });

  // 10,000 account ids of up to 64 characters fit in 1 MB; 2 MB leaves room for the rest.
  router.post('/v1/decisions/batch', auth, jsonBody('2mb'), async (req, res) => {
    res.json(await decisions.decideBatch({ principal: principalOf(res), requestId: requestIdOf(res) }, parse(batchRequestSchema, req.body)));
  });

  return router;
}
