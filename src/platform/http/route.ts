import type { Request, RequestHandler, Response, Router } from 'express';
import type { z } from 'zod';
import { requireScope } from '../auth/middleware';
import type { Scope } from '../auth/principal';
import type { TokenVerifier } from '../auth/tokens';
import { AppError } from '../errors';
import { jsonBody } from './middleware';
import { parse } from './validate';

/**
 * One API operation, described once: the router mounts it (authentication, body parser,
 * validation of path, query and body) and /openapi.json is generated from the same object, so
 * the description cannot drift from what the service does.
 */
export interface RouteSpec<
  P extends z.ZodType = z.ZodType,
  Q extends z.ZodType = z.ZodType,
  B extends z.ZodType = z.ZodType,
> {
  readonly method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI style: `/v1/accounts/{accountId}/consents`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  /** Any one of these scopes is required; absent: the operation is public. */
  readonly scopes?: readonly Scope[];
  readonly params?: P;
  readonly query?: Q;
  /** A JSON body of at most `limit` bytes, validated. */
  readonly body?: { readonly schema: B; readonly limit: number };
  /** A body of another kind, streamed to the handler (NDJSON). */
  readonly stream?: { readonly contentTypes: readonly string[]; readonly description: string };
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  /** Problem statuses beyond those the spec implies (401/403 for a scope, 422 for input, 413/415 for a body, 503). */
  readonly problems?: readonly number[];
}

export interface ResponseSpec {
  readonly description: string;
  /** Zod schema of a JSON body. */
  readonly schema?: z.ZodType;
  /** Another content type (the body is described, not schematised). */
  readonly contentType?: string;
  /** Other representations of the same answer, chosen by `Accept`: content type → what the body is. */
  readonly alternatives?: Readonly<Record<string, string>>;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Keeps each spec's own schema types, for the handler's typed input. */
export const defineRoute = <P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(spec: RouteSpec<P, Q, B>) =>
  spec;

export interface RouteInput<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  readonly params: z.infer<P>;
  readonly query: z.infer<Q>;
  readonly body: z.infer<B>;
}

export type RouteHandler<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> = (
  input: RouteInput<P, Q, B>,
  req: Request,
  res: Response,
) => unknown;

/** `/v1/x/{id}` → `/v1/x/:id`. */
export const expressPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');

/**
 * Returns `route(spec, handler)`, which mounts an operation on `router`: authentication first,
 * then the body, then validation of path, query and body, then the handler. A router of public
 * operations needs no verifier.
 */
export function mounter(router: Router, verifier?: TokenVerifier) {
  return <P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
    spec: RouteSpec<P, Q, B>,
    handler: RouteHandler<P, Q, B>,
  ): void => {
    const chain: RequestHandler[] = [];
    if (spec.scopes) {
      if (!verifier) throw new Error(`${spec.operationId} needs a token verifier`);
      chain.push(requireScope(verifier, ...spec.scopes));
    }
    if (spec.body) chain.push(jsonBody(spec.body.limit));
    chain.push(async (req, res) => {
      const params = spec.params ? parse(spec.params, req.params) : {};
      const query = spec.query ? parse(spec.query, req.query) : {};
      if (spec.stream && !req.is([...spec.stream.contentTypes])) {
        throw new AppError('unsupported-media-type', `Send the body as ${spec.stream.contentTypes[0]}.`);
      }
      const body = spec.body ? parse(spec.body.schema, req.body) : undefined;
      await handler({ params, query, body } as RouteInput<P, Q, B>, req, res);
    });
    router[spec.method](expressPath(spec.path), ...chain);
  };
}
