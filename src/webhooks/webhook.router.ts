import { Router } from 'express';
import { principalOf } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import { decodeCursor } from '../platform/pagination';
import { webhookRoutes as routes } from './webhook.schema';
import type { WebhookService } from './webhook.service';

export interface WebhookRouterDeps {
  readonly webhooks: WebhookService;
  readonly verifier: TokenVerifier;
}

/** A client manages its own receivers only: another client's are 404 (the service looks them up by owner). */
export function webhookRouter({ webhooks, verifier }: WebhookRouterDeps): Router {
  const router = Router();
  const route = mounter(router, verifier);
  const client = (res: Parameters<typeof principalOf>[0]) => principalOf(res).clientId;

  route(routes.create, async ({ body }, _req, res) => {
    const created = await webhooks.create(client(res), body);
    res.setHeader('location', `/v1/webhooks/${created.id}`);
    sendJson(res, created, 201);
  });
  route(routes.list, async (_input, _req, res) => {
    sendJson(res, await webhooks.list(client(res)));
  });
  route(routes.get, async ({ params }, _req, res) => {
    sendJson(res, await webhooks.get(client(res), params.id));
  });
  route(routes.remove, async ({ params }, _req, res) => {
    await webhooks.remove(client(res), params.id);
    res.status(204).end();
  });
  route(routes.test, async ({ params }, _req, res) => {
    sendJson(res, await webhooks.test(client(res), params.id), 202);
  });
  route(routes.deliveries, async ({ params, query }, _req, res) => {
    const beforeSeq = query.cursor ? decodeCursor(query.cursor) : undefined;
    sendJson(res, await webhooks.deliveries(client(res), params.id, { ...query, beforeSeq }));
  });
  route(routes.replay, async ({ params }, _req, res) => {
    sendJson(res, await webhooks.replay(client(res), params.id, params.deliveryId), 202);
  });
  return router;
}
