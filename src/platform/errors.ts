/**
 * One error model. Every failure that reaches a caller is an AppError with a stable
 * problem type; http/problem.ts maps it to application/problem+json (RFC 9457), and the
 * job runner logs the same fields. Anything else is an internal error and is answered 503:
 * the service fails closed.
 */

export type ProblemType =
  | 'bad-request'
  | 'validation'
  | 'unauthenticated'
  | 'forbidden'
  | 'not-found'
  | 'method-not-allowed'
  | 'not-acceptable'
  | 'conflict'
  | 'gone'
  | 'payload-too-large'
  | 'unsupported-media-type'
  | 'too-many-requests'
  | 'headers-too-large'
  | 'unavailable';

const titles: Record<ProblemType, [status: number, title: string]> = {
  'bad-request': [400, 'Bad request'],
  validation: [422, 'Request failed validation'],
  unauthenticated: [401, 'Authentication required'],
  forbidden: [403, 'Forbidden'],
  'not-found': [404, 'Not found'],
  'method-not-allowed': [405, 'Method not allowed'],
  'not-acceptable': [406, 'Not acceptable'],
  conflict: [409, 'Conflict'],
  gone: [410, 'Gone'],
  'payload-too-large': [413, 'Payload too large'],
  'unsupported-media-type': [415, 'Unsupported media type'],
  'too-many-requests': [429, 'Too many requests'],
  'headers-too-large': [431, 'Request header fields too large'],
  unavailable: [503, 'Service unavailable'],
};

export interface FieldProblem {
  readonly path: string;
  readonly message: string;
}

export class AppError extends Error {
  readonly status: number;
  readonly title: string;

  constructor(
    readonly type: ProblemType,
    readonly detail: string,
    readonly errors?: readonly FieldProblem[],
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(detail);
    [this.status, this.title] = titles[type];
  }
}

export const problemTypeUri = (type: ProblemType) => `urn:optgate:problem:${type}`;

export const validationError = (errors: readonly FieldProblem[], detail = 'The request is not valid.') =>
  new AppError('validation', detail, errors);
