import { z } from 'zod';
import type { ResponseSpec, RouteSpec } from '../platform/http/route';

/**
 * GET /openapi.json, generated from the route table: every path, method, scope, parameter,
 * request body and response comes from the same specs the routers mount, so the description
 * cannot drift from what the service accepts and answers.
 */

const PROBLEM_TITLES: Record<number, string> = {
  400: 'The request could not be read (malformed body, or a Content-Encoding that does not match it)',
  401: 'No valid bearer token',
  403: 'The token lacks the scope, or the client is not entitled to the purpose',
  404: 'Not found',
  406: 'None of the media types in Accept is one this operation answers in',
  409: 'Not in a state that allows this yet',
  413: 'The body (or the number of items) is larger than this operation accepts',
  415: 'The body is not of a type (or Content-Encoding) this operation accepts',
  422: 'The request failed validation; `errors` lists every field',
  431: 'The request headers are too large',
  503: 'The service could not answer safely (a dependency failed, or too much work is queued); never an allow',
};

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return json;
};

/** The problem statuses an operation can answer: implied by what it takes, plus what it declares. */
function problemStatuses(r: RouteSpec): number[] {
  const statuses = new Set<number>([
    431,
    ...(r.problems ?? []),
    ...(r.scopes ? [401, 403, 503] : []),
    ...(r.params || r.query || r.body ? [422] : []),
    ...(r.body || r.stream ? [400, 413, 415] : []),
  ]);
  for (const s of Object.keys(r.responses)) statuses.delete(Number(s));
  return [...statuses].sort();
}

function response(r: ResponseSpec) {
  const headers = r.headers
    ? Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, { description: v, schema: { type: 'string' } }]))
    : undefined;
  const alternatives = Object.entries(r.alternatives ?? {}).map(([type, description]) => [
    type,
    { schema: { type: 'string', description } },
  ]);
  const content = r.schema
    ? { 'application/json': { schema: jsonSchema(r.schema, 'output') }, ...Object.fromEntries(alternatives) }
    : r.contentType
      ? { [r.contentType]: { schema: { type: 'string' } } }
      : undefined;
  return { description: r.description, ...(headers ? { headers } : {}), ...(content ? { content } : {}) };
}

/** Path and query parameters from the spec's zod objects: one parameter per property. */
function parameters(r: RouteSpec) {
  const from = (schema: z.ZodType | undefined, where: 'path' | 'query') => {
    if (!schema) return [];
    const json = jsonSchema(schema, 'input') as { properties?: Record<string, object>; required?: string[] };
    return Object.entries(json.properties ?? {}).map(([name, s]) => {
      const { description, ...schemaOnly } = s as { description?: string };
      return {
        name,
        in: where,
        required: where === 'path' || (json.required ?? []).includes(name),
        ...(description ? { description } : {}),
        schema: schemaOnly,
      };
    });
  };
  return [...from(r.params, 'path'), ...from(r.query, 'query')];
}

function operation(r: RouteSpec) {
  const params = parameters(r);
  return {
    operationId: r.operationId,
    summary: r.summary,
    ...(r.description ? { description: r.description } : {}),
    tags: [r.tag],
    security: r.scopes ? [{ bearer: [...r.scopes] }] : [],
    ...(params.length ? { parameters: params } : {}),
    ...(r.body
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: jsonSchema(r.body.schema, 'input') } },
          },
        }
      : {}),
    ...(r.stream
      ? {
          requestBody: {
            required: true,
            description: r.stream.description,
            content: Object.fromEntries(r.stream.contentTypes.map((t) => [t, { schema: { type: 'string' } }])),
          },
        }
      : {}),
    responses: {
      ...Object.fromEntries(Object.entries(r.responses).map(([status, spec]) => [status, response(spec)])),
      ...Object.fromEntries(problemStatuses(r).map((s) => [String(s), { $ref: `#/components/responses/Problem${s}` }])),
    },
  };
}

const TAGS: Record<string, string> = {
  accounts: "The ISP's subscriber accounts and their status",
  consents: "Subscribers' choices, recorded through any channel, and the change feed",
  decisions: 'Ask before using subscriber data: one account, a batch, or a stream of records',
  notices: 'The versioned privacy notice every channel records',
  audit: 'The tamper-evident audit log: records, signed checkpoints, exports',
  webhooks: 'Signed deliveries of consent events to receivers a client registers',
  operations: 'Health, readiness, metrics, this description, public keys',
};

export function openApiDocument(routes: readonly RouteSpec[]): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of routes) paths[r.path] = { ...paths[r.path], [r.method]: operation(r) };
  const used = new Set(routes.flatMap((r) => problemStatuses(r)));
  return {
    openapi: '3.1.0',
    info: {
      title: 'optgate',
      version: '1',
      description:
        'ISP-side opt-in enforcement gateway: pipelines ask before they use subscriber data; no valid opt-in ' +
        '(or entitled statutory exception) means deny.',
      license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
    },
    // Relative: the instance that serves this document serves the API.
    servers: [{ url: '/', description: 'This deployment' }],
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    paths,
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
          description: 'RFC 9457 problem details',
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
      responses: Object.fromEntries(
        [...used].sort().map((s) => [
          `Problem${s}`,
          {
            description: PROBLEM_TITLES[s] ?? 'A problem',
            content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
          },
        ]),
      ),
    },
  };
}
