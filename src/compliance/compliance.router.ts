import { Router } from 'express';
import type { TokenVerifier } from '../platform/auth/tokens';
import { sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import { complianceRoutes as routes } from './compliance.schema';
import type { ComplianceService } from './compliance.service';

export function complianceRouter({ compliance, verifier }: { compliance: ComplianceService; verifier: TokenVerifier }) {
  const router = Router();
  const route = mounter(router, verifier);
  route(routes.nonDiscrimination, async ({ query }, _req, res) => {
    sendJson(res, await compliance.nonDiscrimination(query));
  });
  return router;
}
