import { Router } from 'express';
import { principalOf } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { AppError } from '../platform/errors';
import { requestIdOf, sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import { consentRoutes as routes } from './consent.schema';
import type { ConsentService } from './consent.service';

export function consentRouter({ consents, verifier }: { consents: ConsentService; verifier: TokenVerifier }): Router {
  const router = Router();
  const route = mounter(router, verifier);

  route(routes.current, async ({ params: { accountId } }, _req, res) => {
    sendJson(res, { accountId, consents: await consents.currentState(accountId) });
  });

  route(routes.record, async ({ params: { accountId }, body }, req, res) => {
    if (body.actor.type === 'subscriber' && !principalOf(res).subscriberChannel) {
      throw new AppError(
        'forbidden',
        'Only a client whose token carries the subscriber_channel claim may record a change as the subscriber; ' +
          'staff acting on their word send actor {type: "staff", id}, verification and reference.',
      );
    }
    const result = await consents.record(accountId, body, {
      clientId: principalOf(res).clientId,
      requestId: requestIdOf(res),
      ip: req.ip,
      userAgent: req.get('user-agent'),
    });
    sendJson(res, { accountId, ...result });
  });

  return router;
}
