import type { z } from 'zod';
import type { consentChangesResponseSchema } from '../audit/changes.contract';
import type {
  batchRequestSchema,
  batchResponseSchema,
  decisionRequestSchema,
  decisionResponseSchema,
  filterQuerySchema,
} from '../policy/decision.contract';

/** The types of the wire format, inferred from the schemas the service validates with. */

export type DecisionRequest = z.input<typeof decisionRequestSchema>;
export type Decision = z.output<typeof decisionResponseSchema>;
/** Any number of accounts: the client splits them into calls of at most 10,000. */
export type BatchRequest = z.input<typeof batchRequestSchema>;
export type BatchResponse = z.output<typeof batchResponseSchema>;
export type BatchResult = BatchResponse['results'][number];
/** The answer to a batch of any size: one result per account, in request order. */
export interface BatchDecision {
  readonly purpose: string;
  /** The decision id of each call made (none when every result came from the local cache). */
  readonly decisionIds: readonly string[];
  readonly results: readonly BatchResult[];
}
export type ConsentChange = z.output<typeof consentChangesResponseSchema>['changes'][number];
export type ConsentChangesPage = z.output<typeof consentChangesResponseSchema>;

/** POST /v1/filter's query, with `categories` as a list. */
export type FilterOptions = Omit<z.input<typeof filterQuerySchema>, 'categories'> & {
  readonly categories?: readonly string[];
};

/** The filter's counts (its HTTP trailers). */
export interface FilterCounts {
  readonly received: number;
  readonly allowed: number;
  readonly invalid: number;
  readonly redacted: number;
}
