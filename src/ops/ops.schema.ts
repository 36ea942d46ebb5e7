import { z } from 'zod';
import { defineRoute } from '../platform/http/route';

const check = z.enum(['ok', 'unavailable']);
const readiness = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z.object({ database: check, redis: check }),
  shuttingDown: z.literal(true).optional(),
});

export const opsRoutes = {
  health: defineRoute({
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    summary: 'Liveness: the process answers',
    tag: 'operations',
    responses: { 200: { description: 'Alive', schema: z.object({ status: z.literal('ok') }) } },
    problems: [],
  }),
  ready: defineRoute({
    method: 'get',
    path: '/readyz',
    operationId: 'ready',
    summary: 'Readiness: can this instance answer decisions?',
    description:
      'Ready when PostgreSQL answers (decisions need nothing else) and the instance is not shutting down. ' +
      'Redis is reported, but its loss does not take the instance out of rotation: the portal, exports and ' +
      'background jobs wait for it, decisions do not.',
    tag: 'operations',
    responses: {
      200: { description: 'Ready', schema: readiness },
      503: { description: 'Not ready', schema: readiness },
    },
    problems: [],
  }),
  metrics: defineRoute({
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    tag: 'operations',
    responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain' } },
    problems: [],
  }),
  openapi: defineRoute({
    method: 'get',
    path: '/openapi.json',
    operationId: 'openapi',
    summary: 'This description',
    tag: 'operations',
    responses: { 200: { description: 'OpenAPI 3.1', contentType: 'application/json' } },
    problems: [],
  }),
  jwks: defineRoute({
    method: 'get',
    path: '/.well-known/jwks.json',
    operationId: 'jwks',
    summary: 'Public signing keys, the current one first, then retired ones (receipts, tree heads, manifests)',
    tag: 'operations',
    responses: {
      200: {
        description: 'A JSON Web Key Set',
        schema: z.object({ keys: z.array(z.object({ kty: z.string(), kid: z.string() }).loose()) }),
      },
    },
    problems: [],
  }),
  gpc: defineRoute({
    method: 'get',
    path: '/.well-known/gpc.json',
    operationId: 'gpc',
    summary: "Global Privacy Control support (the GPC specification's well-known resource)",
    description: 'A portal request with `Sec-GPC: 1` is honoured as a standing opt-out (docs/portal.md).',
    tag: 'operations',
    responses: {
      200: {
        description: 'The site honours GPC',
        schema: z.object({
          gpc: z.literal(true),
          lastUpdate: z.iso.date().describe('When the notice that describes it took effect'),
        }),
      },
    },
    problems: [],
  }),
};
