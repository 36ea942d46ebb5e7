import { Router } from 'express';
import { z } from 'zod';
import { principalOf, requireScope } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import type { Db } from '../platform/db/database';
import { jsonBody } from '../platform/http/middleware';
import { parse } from '../platform/http/validate';
import { accountIdSchema, upsertAccounts } from './account.service';

const state = z
  .string()
  .min(1)
  .max(64)
  .nullish()
  .transform((v) => v ?? null);
export const accountsRequestSchema = z.strictObject({
  accounts: z
    .array(
      z.strictObject({
        accountId: accountIdSchema,
        status: z.enum(['active', 'closed']),
        serviceState: state,
        billingState: state,
      }),
    )
    .min(1),
});

export function accountRouter(db: Db, verifier: TokenVerifier, clock: () => Date): Router {
  const router = Router();
  router.post('/v1/accounts', requireScope(verifier, 'accounts:write'), jsonBody('4mb'), async (req, res) => {
    const { accounts } = parse(accountsRequestSchema, req.body);
    res.json(await upsertAccounts(db, principalOf(res).clientId, accounts, clock()));
  });
  return router;
}
