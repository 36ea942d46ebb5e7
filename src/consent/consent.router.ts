import { Router } from 'express';
import { z } from 'zod';
import { accountIdSchema } from '../accounts/account.service';
import { principalOf, requireScope } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { jsonBody, requestIdOf } from '../platform/http/middleware';
import { parse } from '../platform/http/validate';
import type { ConsentService } from './consent.service';

const accountParam = z.object({ accountId: accountIdSchema });

export const changeSetSchema = z.strictObject({
  channel: z.enum(['api', 'call_center', 'point_of_sale'], {
    error: 'must be api, call_center or point_of_sale (portal changes are made in the portal)',
  }),
  actor: z.union([
    z.literal('subscriber').transform(() => ({ type: 'subscriber' as const })),
    z.strictObject({ type: z.literal('subscriber') }),
    z.strictObject({ type: z.literal('staff'), id: z.string().min(1).max(128) }),
  ]),
  noticeVersion: z.string().min(1).max(32),
  affirmative: z.boolean().default(false),
  changes: z
    .array(
      z.strictObject({
        purpose: z.string().min(1).max(64),
        category: z.string().min(1).max(64),
        choice: z.enum(['grant', 'revoke', 'opt_out', 'withdraw_opt_out']),
        expiresAt: z.iso
          .datetime({ offset: true })
          .transform((s) => new Date(s))
          .optional(),
      }),
    )
    .min(1)
    .max(200),
});

export function consentRouter(consents: ConsentService, verifier: TokenVerifier): Router {
  const router = Router();

  router.get(
    '/v1/accounts/:accountId/consents',
    requireScope(verifier, 'decisions', 'consents:write'),
    async (req, res) => {
      const { accountId } = parse(accountParam, req.params);
      res.json({ accountId, consents: await consents.currentState(accountId) });
    },
  );

  router.put(
    '/v1/accounts/:accountId/consents',
    requireScope(verifier, 'consents:write'),
    jsonBody('256kb'),
    async (req, res) => {
      const { accountId } = parse(accountParam, req.params);
      const set = parse(changeSetSchema, req.body);
      const result = await consents.record(accountId, set, {
        clientId: principalOf(res).clientId,
        requestId: requestIdOf(res),
        ip: req.ip,
        userAgent: req.get('user-agent'),
      });
      res.json({ accountId, ...result });
    },
  );

  return router;
}
