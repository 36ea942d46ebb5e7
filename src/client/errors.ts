import type { ProblemType } from '../platform/errors';

/** Every failure the client reports is an OptgateError: none of them is ever an allow. */
export class OptgateError extends Error {
  override readonly name: string = 'OptgateError';
}

/** One `{path, message}` of a validation problem. */
export interface FieldProblem {
  readonly path: string;
  readonly message: string;
}

/** The service's problem+json document (RFC 9457), as far as it came. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail?: string;
  readonly requestId?: string;
  readonly errors?: readonly FieldProblem[];
}

/** An answer the client does not retry: a 4xx (or another status it does not retry), with its problem document. */
export class OptgateProblemError extends OptgateError {
  override readonly name: string = 'OptgateProblemError';
  readonly status: number;
  /** The short name of the problem type (`validation`, `forbidden`, …), or undefined when it is not optgate's. */
  readonly problemType?: ProblemType;
  readonly requestId?: string;
  readonly errors: readonly FieldProblem[];

  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ''}`);
    this.status = problem.status;
    const prefix = 'urn:optgate:problem:';
    this.problemType = problem.type.startsWith(prefix) ? (problem.type.slice(prefix.length) as ProblemType) : undefined;
    this.requestId = problem.requestId;
    this.errors = problem.errors ?? [];
  }
}

/** The service could not be reached or kept answering 502, 503 or 504 until the retries ran out. */
export class OptgateUnavailableError extends OptgateError {
  override readonly name: string = 'OptgateUnavailableError';

  constructor(
    message: string,
    /** Attempts made. */
    readonly attempts: number,
    /** The last failure: an OptgateProblemError (a status) or the connection error. */
    override readonly cause: unknown,
  ) {
    super(message, { cause });
  }
}

/** An answer that does not match the documented schema, or a filter stream that was cut before its end. */
export class OptgateProtocolError extends OptgateError {
  override readonly name: string = 'OptgateProtocolError';
}

/**
 * The filter's answer was cut: the service failed after it had started streaming (or the connection broke). The
 * records already received are not the whole answer: discard what was written from them.
 */
export class OptgateStreamCutError extends OptgateProtocolError {
  override readonly name: string = 'OptgateStreamCutError';
}

/** A problem document from an answer's text, or one made up from the status when the body is not one. */
export function problemOf(status: number, statusText: string, contentType: string, text: string): Problem {
  if (/json/.test(contentType)) {
    try {
      const body = JSON.parse(text) as Partial<Problem>;
      if (body && typeof body.type === 'string' && typeof body.title === 'string')
        return { ...body, status } as Problem;
    } catch {
      // Not JSON after all: described by its status below.
    }
  }
  return { type: 'about:blank', title: statusText || `HTTP ${status}`, status };
}
