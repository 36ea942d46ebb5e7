import { randomUUID } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const requestIdOf = (res: Response): string => res.locals.requestId as string;

/** Accepts a well-formed X-Request-Id from the caller, or makes one; echoes it on the response. */
export const requestId: RequestHandler = (req, res, next) => {
  const incoming = req.get('x-request-id');
  const id = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.locals.requestId = id;
  res.setHeader('x-request-id', id);
  next();
};

/** The route pattern, never the URL: paths and query strings may carry account ids. */
export function routeOf(req: Request): string {
  return req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
}

export function accessLog(logger: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeOf(req);
      metrics.httpRequests.observe({ method: req.method, route, status: String(res.statusCode) }, seconds);
      logger.info(
        {
          requestId: requestIdOf(res),
          method: req.method,
          route,
          status: res.statusCode,
          ms: Math.round(seconds * 1e4) / 10,
        },
        'request',
      );
    });
    next();
  };
}

/**
 * JSON bodies only, of a bounded size. A body of another type is 415; the parser's own
 * failures (malformed, too large) are mapped to problems by the error handler.
 */
export function jsonBody(limit: string): RequestHandler {
  const parser = express.json({ limit, type: ['application/json', 'application/*+json'], strict: true });
  return (req: Request, res: Response, next: NextFunction) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody && !req.is(['application/json', 'application/*+json'])) {
      next(new AppError('unsupported-media-type', 'Send the body as application/json.'));
      return;
    }
    parser(req, res, next);
  };
}

const DECODERS: Record<string, (() => Transform) | undefined> = {
  identity: undefined,
  gzip: zlib.createGunzip,
  'x-gzip': zlib.createGunzip,
  deflate: zlib.createInflate,
  br: zlib.createBrotliDecompress,
};

/**
 * A streamed request body, decompressed as its Content-Encoding says. An encoding we do not
 * accept is 415; data that does not decompress is a 400 problem (fromParserError), not a 503.
 */
export function decodedBody(req: Request): Readable {
  const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (!(encoding in DECODERS)) {
    throw new AppError('unsupported-media-type', 'The Content-Encoding is not supported: use gzip, deflate or br.');
  }
  const decoder = DECODERS[encoding];
  if (!decoder) return req;
  // Not pipeline(): a decoder that fails must not destroy the request, which the error handler drains. The reader
  // sees the failure as the caller's bad body.
  const decoded = decoder();
  req.on('error', (err) => decoded.destroy(err));
  req.pipe(decoded);
  return Readable.from(
    (async function* () {
      try {
        yield* decoded;
      } catch {
        throw new AppError('bad-request', `The body is not valid ${encoding} data.`);
      }
    })(),
  );
}
