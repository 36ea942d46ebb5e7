import { z } from 'zod';
import { accountsRequestSchema } from '../accounts/account.router';
import { exportRequestSchema } from '../audit/audit.router';
import { changeSetSchema } from '../consent/consent.router';
import { batchRequestSchema, decisionRequestSchema } from '../policy/decision.router';

/**
 * GET /openapi.json: the API described from the same zod schemas that validate requests, so
 * the description cannot drift from what the service accepts.
 */

const schemaOf = (s: z.ZodType) => {
  const { $schema: _, ...json } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return json;
};

const problem = {
  description: 'application/problem+json (RFC 9457)',
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
};
const json = (description: string) => ({
  description,
  content: { 'application/json': { schema: { type: 'object' } } },
});
const body = (s: z.ZodType) => ({ required: true, content: { 'application/json': { schema: schemaOf(s) } } });
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), problem]));
const secured = (scopes: string[]) => ({ security: [{ bearer: scopes }] });
const accountParam = {
  name: 'accountId',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
};
const query = (name: string, schema: object) => ({ name, in: 'query', required: false, schema });

export function openApiDocument(): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'optgate',
      version: '1',
      description:
        'ISP-side opt-in enforcement gateway: pipelines ask before they use subscriber data; no valid opt-in (or entitled statutory exception) means deny.',
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'Scopes in the "scope" claim; the purposes a client may ask about in the "purposes" claim.',
        },
      },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail', 'requestId'],
          properties: {
            type: { type: 'string', examples: ['urn:optgate:problem:validation'] },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            requestId: { type: 'string' },
            errors: {
              type: 'array',
              items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } },
            },
          },
        },
      },
    },
    paths: {
      '/v1/accounts': {
        post: {
          summary: 'Upsert up to 10,000 accounts',
          ...secured(['accounts:write']),
          requestBody: body(accountsRequestSchema),
          responses: { 200: json('{upserted, changed}'), ...errors(400, 401, 403, 413, 415, 422, 503) },
        },
      },
      '/v1/accounts/{accountId}/consents': {
        get: {
          summary: 'Current consent state per purpose × category',
          ...secured(['decisions', 'consents:write']),
          parameters: [accountParam],
          responses: { 200: json('{accountId, consents}'), ...errors(401, 403, 404, 422, 503) },
        },
        put: {
          summary: 'Record consent changes from a channel other than the portal',
          ...secured(['consents:write']),
          parameters: [accountParam],
          requestBody: body(changeSetSchema),
          responses: { 200: json('{accountId, events, consents}'), ...errors(400, 401, 403, 404, 415, 422, 503) },
        },
      },
      '/v1/notices': { get: { summary: 'Notice versions', responses: { 200: json('{current, versions}') } } },
      '/v1/notices/{version}': {
        get: {
          summary: 'One notice version with its text',
          parameters: [{ name: 'version', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 200: json('{version, effectiveAt, sha256, material, materialFor, text}'), ...errors(404) },
        },
      },
      '/v1/decisions': {
        post: {
          summary: "May this account's data be used for this purpose?",
          ...secured(['decisions']),
          requestBody: body(decisionRequestSchema),
          responses: {
            200: json('{decisionId, accountId, purpose, allow, evaluatedAt, validUntil?, results}'),
            ...errors(400, 401, 403, 413, 415, 422, 503),
          },
        },
      },
      '/v1/decisions/batch': {
        post: {
          summary: 'The same question for up to 10,000 accounts',
          ...secured(['decisions']),
          requestBody: body(batchRequestSchema),
          responses: {
            200: json('{decisionId, purpose, evaluatedAt, results} in request order'),
            ...errors(400, 401, 403, 413, 415, 422, 503),
          },
        },
      },
      '/v1/consent-changes': {
        get: {
          summary: 'Consent events in commit order, for purging after a revocation',
          ...secured(['decisions']),
          parameters: [
            query('after', { type: 'integer', minimum: 0 }),
            query('limit', { type: 'integer', minimum: 1, maximum: 1000 }),
          ],
          responses: { 200: json('{changes, next}'), ...errors(401, 403, 422, 503) },
        },
      },
      '/v1/audit/events': {
        get: {
          summary: 'Audit records, filtered, cursor-paginated',
          ...secured(['audit:read']),
          parameters: ['from', 'to', 'accountId', 'type', 'outcome', 'include', 'cursor', 'limit'].map((n) =>
            query(n, { type: 'string' }),
          ),
          responses: { 200: json('{events, nextCursor}'), ...errors(401, 403, 422, 503) },
        },
      },
      '/v1/audit/checkpoints': {
        get: {
          summary: 'Signed chain heads, newest first',
          ...secured(['audit:read']),
          parameters: [query('cursor', { type: 'string' }), query('limit', { type: 'integer' })],
          responses: { 200: json('{checkpoints, nextCursor}'), ...errors(401, 403, 503) },
        },
      },
      '/v1/audit/exports': {
        post: {
          summary: 'Start an export (a background job)',
          ...secured(['audit:read']),
          requestBody: body(exportRequestSchema),
          responses: { 202: json('{exportId, status}'), ...errors(400, 401, 403, 415, 422, 503) },
        },
      },
      '/v1/audit/exports/{id}': {
        get: {
          summary: 'Export status',
          ...secured(['audit:read']),
          responses: { 200: json('{status, progress, rows, bytes, sha256}'), ...errors(401, 403, 404, 503) },
        },
      },
      '/v1/audit/exports/{id}/download': {
        get: {
          summary: 'The exported file',
          ...secured(['audit:read']),
          responses: { 200: { description: 'application/x-ndjson or text/csv' }, ...errors(401, 403, 404, 409, 503) },
        },
      },
      '/v1/audit/exports/{id}/manifest': {
        get: {
          summary: 'The signed manifest (JWS)',
          ...secured(['audit:read']),
          responses: { 200: { description: 'application/jose' }, ...errors(401, 403, 404, 409, 503) },
        },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { 200: json('{status}') } } },
      '/readyz': {
        get: {
          summary: 'Readiness of PostgreSQL and Redis',
          responses: { 200: json('{status, checks}'), 503: json('{status, checks}') },
        },
      },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { 200: { description: 'text/plain' } } } },
      '/.well-known/jwks.json': {
        get: { summary: 'Public signing keys (receipts, checkpoints, manifests)', responses: { 200: json('{keys}') } },
      },
    },
  };
}
