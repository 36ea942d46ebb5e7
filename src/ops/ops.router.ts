import { Router } from 'express';
import type { Redis } from 'ioredis';
import type { JSONWebKeySet } from 'jose';
import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import type { Metrics } from '../platform/metrics';
import { openApiDocument } from './openapi';

const withTimeout = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);

export interface OpsDeps {
  readonly db: Db;
  readonly redis: Redis;
  readonly metrics: Metrics;
  readonly publicJwks: JSONWebKeySet;
  readonly isShuttingDown: () => boolean;
}

/** Liveness, readiness, metrics and public keys: unauthenticated, as load balancers and scrapers expect. */
export function opsRouter(deps: OpsDeps): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const check = async (run: () => Promise<unknown>) => {
      try {
        await withTimeout(run(), 1000);
        return 'ok';
      } catch {
        return 'unavailable';
      }
    };
    const [database, redis] = await Promise.all([
      check(() => sql`select 1`.execute(deps.db)),
      check(() => deps.redis.ping()),
    ]);
    const ready = database === 'ok' && redis === 'ok' && !deps.isShuttingDown();
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'not_ready',
      checks: { database, redis },
      ...(deps.isShuttingDown() ? { shuttingDown: true } : {}),
    });
  });

  router.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  const openapi = openApiDocument();
  router.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });

  router.get('/.well-known/jwks.json', (_req, res) => {
    res.set('cache-control', 'public, max-age=300').json(deps.publicJwks);
  });

  return router;
}
