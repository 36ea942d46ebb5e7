import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import { AppError, problemTypeUri } from '../errors';
import type { Logger } from '../logger';
import { requestIdOf } from './middleware';

/** RFC 9457 problem details, with the request id. */
export function problemDocument(err: AppError, requestId: string) {
  return {
    type: problemTypeUri(err.type),
    title: err.title,
    status: err.status,
    detail: err.detail,
    requestId,
    ...(err.errors?.length ? { errors: err.errors } : {}),
  };
}

export function sendProblem(res: Response, err: AppError): void {
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res
    .status(err.status)
    .type('application/problem+json')
    .send(JSON.stringify(problemDocument(err, requestIdOf(res))));
}

/**
 * The body parsers' errors (body-parser, and the streaming decoder below) are the caller's fault:
 * a 4xx problem, never a 503.
 */
export function fromParserError(err: { type?: string; status?: number; expose?: boolean }) {
  switch (err?.type) {
    case 'entity.parse.failed':
      return new AppError('bad-request', 'The body is not valid JSON.');
    case 'entity.too.large':
      return new AppError('payload-too-large', 'The body is larger than this endpoint accepts.');
    case 'parameters.too.many':
      return new AppError('payload-too-large', 'The form has more fields than this endpoint accepts.');
    case 'charset.unsupported':
      return new AppError('unsupported-media-type', 'The body charset is not supported.');
    case 'encoding.unsupported':
      return new AppError('unsupported-media-type', 'The Content-Encoding is not supported: use gzip, deflate or br.');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new AppError('bad-request', 'The body could not be read.');
  }
  // Anything else body-parser refuses as the caller's fault: data that does not match its Content-Encoding.
  if (err?.expose && err.status === 400) {
    return new AppError('bad-request', 'The body could not be read: its Content-Encoding does not match its data.');
  }
  return undefined;
}

const DISCARD_LIMIT_BYTES = 64 << 20;

function discardBody(req: Request): void {
  let discarded = 0;
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_LIMIT_BYTES) req.socket.destroy();
  });
  req.resume();
}

export const notFound: RequestHandler = (_req, _res, next) =>
  next(new AppError('not-found', 'There is nothing at this path.'));

/**
 * The one error handler. Known errors become their problem; anything unexpected is logged and
 * answered 503, never a partial or optimistic answer: the service fails closed.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const known = err instanceof AppError ? err : fromParserError(err);
    const problem = known ?? new AppError('unavailable', 'The service could not complete this request. Try again.');
    if (!known) {
      logger.error(
        {
          requestId: requestIdOf(res),
          err: { message: err?.message, code: err?.code, name: err?.name, stack: err?.stack },
        },
        'request failed',
      );
    }
    if (res.headersSent) {
      // A streamed response cannot change its status: cut it so the caller sees it is incomplete.
      res.destroy();
      return;
    }
    // Refused before its (streamed) body was read: the rest is read and discarded so that the caller, still
    // sending, gets the answer; past a bound, the connection is cut instead.
    if (!req.complete) discardBody(req);
    sendProblem(res, problem);
  };
}
