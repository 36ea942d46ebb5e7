/**
 * optgate/client: a typed client for pipelines. It loads no part of the server (no express, pg or redis): only the
 * zod schemas of the wire format, which the service validates with too.
 */
export { AllowCache, type AllowCacheOptions } from './allow-cache';
export {
  type ClientOptions,
  type ConsentChangesOptions,
  createClient,
  type FeedWatcher,
  MAX_BATCH,
  OptgateClient,
  type WatchFeedOptions,
} from './client';
export {
  type FieldProblem,
  OptgateError,
  OptgateProblemError,
  OptgateProtocolError,
  OptgateStreamCutError,
  OptgateUnavailableError,
  type Problem,
} from './errors';
export { type FilterInput, FilterStream } from './filter';
export type { RetryOptions, TokenSource } from './http';
export type {
  BatchDecision,
  BatchRequest,
  BatchResult,
  ConsentChange,
  ConsentChangesPage,
  Decision,
  DecisionRequest,
  FilterCounts,
  FilterOptions,
} from './types';
export { verifyWebhook, type WebhookHeaders, WebhookVerificationFailed } from './webhook';
