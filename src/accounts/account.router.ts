import { Router } from 'express';
import { principalOf } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import { accountRoutes as routes } from './account.schema';
import type { AccountService } from './account.service';

export function accountRouter({ accounts, verifier }: { accounts: AccountService; verifier: TokenVerifier }): Router {
  const router = Router();
  const route = mounter(router, verifier);
  route(routes.upsert, async ({ body }, _req, res) => {
    sendJson(res, await accounts.upsert(principalOf(res).clientId, body.accounts));
  });
  return router;
}
