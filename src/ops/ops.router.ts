import { Router } from 'express';
import type { JSONWebKeySet } from 'jose';
import { sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import type { Metrics } from '../platform/metrics';
import { withTimeout } from '../platform/timeout';
import { opsRoutes as routes } from './ops.schema';

export interface OpsDeps {
  /** Probes of the dependencies: each resolves when the dependency answers. */
  readonly probes: { readonly database: () => Promise<unknown>; readonly redis: () => Promise<unknown> };
  readonly metrics: Metrics;
  readonly publicJwks: JSONWebKeySet;
  /** `/.well-known/gpc.json`: the date the notice describing Global Privacy Control took effect (YYYY-MM-DD). */
  readonly gpcLastUpdate: string;
  readonly openapi: object;
  readonly isShuttingDown: () => boolean;
}

const PROBE_TIMEOUT_MS = 1000;

/** Liveness, readiness, metrics, the API description and public keys: public, as load balancers and scrapers expect. */
export function opsRouter(deps: OpsDeps): Router {
  const router = Router();
  const route = mounter(router);
  const probe = (run: () => Promise<unknown>) =>
    withTimeout(run(), PROBE_TIMEOUT_MS, () => new Error('timeout')).then(
      () => 'ok' as const,
      () => 'unavailable' as const,
    );

  route(routes.health, (_input, _req, res) => {
    sendJson(res, { status: 'ok' });
  });

  // Ready when decisions can be answered: they need PostgreSQL, not Redis (which is reported all the same).
  route(routes.ready, async (_input, _req, res) => {
    const [database, redis] = await Promise.all([probe(deps.probes.database), probe(deps.probes.redis)]);
    const shuttingDown = deps.isShuttingDown();
    const ready = database === 'ok' && !shuttingDown;
    const body = { status: ready ? 'ready' : 'not_ready', checks: { database, redis } };
    sendJson(res, shuttingDown ? { ...body, shuttingDown } : body, ready ? 200 : 503);
  });

  route(routes.metrics, async (_input, _req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  route(routes.openapi, (_input, _req, res) => {
    sendJson(res, deps.openapi);
  });

  route(routes.gpc, (_input, _req, res) => {
    res.setHeader('cache-control', 'public, max-age=3600');
    sendJson(res, { gpc: true, lastUpdate: deps.gpcLastUpdate });
  });

  route(routes.jwks, (_input, _req, res) => {
    res.setHeader('cache-control', 'public, max-age=300');
    sendJson(res, deps.publicJwks);
  });

  return router;
}
