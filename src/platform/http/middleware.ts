import { randomUUID } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const requestIdOf = (res: Response): string => res.locals.requestId as string;

/** The request id when optgate issued it (a random UUID, used once): undefined when the caller sent its own. */
export const issuedRequestIdOf = (res: Response): string | undefined =>
  res.locals.requestIdIssued === true ? requestIdOf(res) : undefined;

/** Accepts a well-formed X-Request-Id from the caller, or makes one; echoes it on the response. */
export const requestId: RequestHandler = (req, res, next) => {
  const incoming = req.get('x-request-id');
  const issued = !(incoming && REQUEST_ID.test(incoming));
  const id = issued ? randomUUID() : incoming;
  res.locals.requestId = id;
  res.locals.requestIdIssued = issued;
  res.setHeader('x-request-id', id);
  next();
};

/** The route pattern, never the URL: paths and query strings may carry account ids. */
export function routeOf(req: Request): string {
  return req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
}

export function accessLog(logger: Logger, metrics: Metrics): RequestHandler {
  // One histogram child per method × route × status, found by a string key instead of hashing labels per request.
  const children = new Map<string, { observe(seconds: number): void }>();
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeOf(req);
      const status = String(res.statusCode);
      const key = `${req.method} ${route} ${status}`;
      let child = children.get(key);
      if (!child) {
        child = metrics.httpRequests.labels(req.method, route, status);
        children.set(key, child);
      }
      child.observe(seconds);
      if (!logger.isLevelEnabled('info')) return;
      const ms = Math.round(seconds * 1e4) / 10;
      logger.info({ requestId: requestIdOf(res), method: req.method, route, status: res.statusCode, ms }, 'request');
    });
    next();
  };
}

/** A JSON answer, written directly (express's res.json re-checks what a JSON API never varies). */
export function sendJson(res: Response, body: unknown, status = 200): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const JSON_TYPES = ['application/json', 'application/*+json'];

/**
 * JSON bodies only, of at most `limit` bytes. A body of another type is 415. An identity-encoded
 * UTF-8 body (what pipelines send) is read and parsed here, directly; a compressed body or another
 * declared charset goes through body-parser. Failures are problems: malformed 400, too large 413.
 */
export function jsonBody(limit: number): RequestHandler {
  const parser = express.json({ limit, type: JSON_TYPES, strict: true });
  return (req: Request, res: Response, next: NextFunction) => {
    const headers = req.headers;
    const hasBody = headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0;
    if (!hasBody) {
      req.body = undefined;
      next();
      return;
    }
    if (!req.is(JSON_TYPES)) {
      next(new AppError('unsupported-media-type', 'Send the body as application/json.'));
      return;
    }
    const encoding = headers['content-encoding'];
    const charset = /;\s*charset=["']?([^;"'\s]+)/i.exec(headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if ((encoding && encoding !== 'identity') || (charset && charset !== 'utf-8' && charset !== 'utf8')) {
      parser(req, res, next);
      return;
    }
    if (Number(headers['content-length'] ?? 0) > limit) {
      next(new AppError('payload-too-large', 'The body is larger than this endpoint accepts.'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const fail = (err: AppError) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      next(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) fail(new AppError('payload-too-large', 'The body is larger than this endpoint accepts.'));
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('error', () => fail(new AppError('bad-request', 'The body could not be read.')));
    req.once('end', () => {
      if (done) return;
      done = true;
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)).toString('utf8');
      // body-parser's strict mode: an object or an array, nothing else.
      const first = /\S/.exec(text)?.[0];
      let parsed: unknown;
      try {
        if (first !== '{' && first !== '[') throw new Error('not an object or array');
        parsed = JSON.parse(text);
      } catch {
        next(new AppError('bad-request', 'The body is not valid JSON.'));
        return;
      }
      req.body = parsed;
      next();
    });
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
