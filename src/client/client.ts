import { setTimeout as sleep } from 'node:timers/promises';
import { consentChangesResponseSchema } from '../audit/changes.contract';
import { batchResponseSchema, decisionResponseSchema } from '../policy/decision.contract';
import type { AllowCache } from './allow-cache';
import { type FilterInput, FilterStream } from './filter';
import { callJson, DEFAULT_RETRY, type RetryOptions, type TokenSource, type Transport } from './http';
import type {
  BatchDecision,
  BatchRequest,
  BatchResult,
  ConsentChange,
  ConsentChangesPage,
  Decision,
  DecisionRequest,
  FilterOptions,
} from './types';

/** The service's limit per batch call. */
export const MAX_BATCH = 10_000;

export interface ClientOptions {
  /** The service's base URL, e.g. `https://optgate.internal` (no trailing path needed). */
  readonly baseUrl: string;
  /** Gives a bearer token for each call; asked again with `forceRefresh` after a 401. */
  readonly getToken: TokenSource;
  /** Each attempt's time limit (default 10 s). */
  readonly timeoutMs?: number;
  readonly retry?: RetryOptions;
  /** Batch calls in flight at once when a list is split (default 2). */
  readonly batchConcurrency?: number;
  /** A local allow cache (off by default): see AllowCache and OptgateClient.watchFeed. */
  readonly cache?: AllowCache;
  /** The fetch to call with (default: the global one). */
  readonly fetch?: typeof fetch;
}

export interface ConsentChangesOptions {
  /** Start after this sequence number: the `seq` of the last change you handled (default 0, the beginning). */
  readonly after?: number;
  /** Page size, 1–1000 (default 100). */
  readonly limit?: number;
  /** Keep polling once the end is reached (default true); false stops at the end. */
  readonly follow?: boolean;
  /** Wait between polls once the end is reached (default 5 s). */
  readonly pollIntervalMs?: number;
  /** Stops following (the iteration ends). */
  readonly signal?: AbortSignal;
}

export interface WatchFeedOptions {
  /** Where to start reading (default 0): a cache only needs changes from before its first entry on. */
  readonly after?: number;
  /** Wait between polls once the end is reached (default 1 s). Keep it well under the cache's maxFeedSilenceMs. */
  readonly pollIntervalMs?: number;
  readonly limit?: number;
  /** Told of each failed poll; the watcher goes on polling (default: ignored, the cache goes inactive in time). */
  readonly onError?: (err: unknown) => void;
}

/** A running feed reader that keeps a cache coherent. */
export interface FeedWatcher {
  /** The `seq` of the last change applied. */
  readonly position: number;
  /** Stops polling; resolves when the reader has stopped. */
  stop(): Promise<void>;
}

const cacheKey = (r: { purpose: string; categories: readonly string[]; recipient?: string; reference?: string }) =>
  JSON.stringify([r.purpose, [...new Set(r.categories)].sort(), r.recipient ?? null, r.reference ?? null]);

/**
 * A typed client of optgate's decision API for pipelines. Every method either answers with what the service said
 * (or, with a cache, what it said earlier and may still be relied on) or throws an OptgateError: a failure is never an
 * allow.
 */
export class OptgateClient {
  private readonly t: Transport;
  private readonly batchConcurrency: number;
  readonly cache?: AllowCache;

  constructor(o: ClientOptions) {
    this.t = {
      baseUrl: o.baseUrl.replace(/\/+$/, ''),
      getToken: o.getToken,
      fetch: o.fetch ?? globalThis.fetch,
      timeoutMs: o.timeoutMs ?? 10_000,
      retry: { ...DEFAULT_RETRY, ...o.retry },
    };
    this.batchConcurrency = Math.max(1, o.batchConcurrency ?? 2);
    this.cache = o.cache;
  }

  /** POST /v1/decisions: may this account's data be used for this purpose and these categories? */
  async decide(request: DecisionRequest): Promise<Decision> {
    const { cache } = this;
    const key = cacheKey(request);
    const hit = cache?.lookup(request.accountId, key)?.decision;
    if (hit) return hit;
    const ticket = cache?.begin() ?? 0;
    try {
      const decision = await callJson(this.t, 'POST', '/v1/decisions', decisionResponseSchema, request);
      if (decision.allow && decision.accountId === request.accountId) {
        cache?.store(
          ticket,
          key,
          { accountId: decision.accountId, allow: true, validUntil: decision.validUntil },
          decision,
        );
      }
      return decision;
    } finally {
      cache?.end();
    }
  }

  /**
   * POST /v1/decisions/batch for a list of any length: split into calls of at most 10,000 accounts (up to
   * `batchConcurrency` at once), one result per account in input order. Any call failing fails the whole.
   */
  async decideBatch(request: BatchRequest): Promise<BatchDecision> {
    const { accountIds, ...common } = request;
    const { cache } = this;
    const key = cacheKey(common);
    const results: (BatchResult | undefined)[] = accountIds.map((id) => cache?.lookup(id, key)?.item);
    const missing = results.flatMap((r, i) => (r ? [] : [i]));
    const chunks: number[][] = [];
    for (let i = 0; i < missing.length; i += MAX_BATCH) chunks.push(missing.slice(i, i + MAX_BATCH));
    const decisionIds: string[] = new Array(chunks.length);
    let nextChunk = 0;
    const worker = async () => {
      while (nextChunk < chunks.length) {
        const n = nextChunk++;
        const positions = chunks[n]!;
        const ticket = cache?.begin() ?? 0;
        try {
          const body = { ...common, accountIds: positions.map((i) => accountIds[i]!) };
          const answer = await callJson(this.t, 'POST', '/v1/decisions/batch', batchResponseSchema, body);
          if (answer.results.length !== positions.length) {
            throw new TypeError('optgate answered a batch with a different number of results');
          }
          decisionIds[n] = answer.decisionId;
          answer.results.forEach((result, j) => {
            const at = positions[j]!;
            if (result.accountId !== accountIds[at]) throw new TypeError('optgate answered a batch out of order');
            results[at] = result;
            cache?.store(ticket, key, result);
          });
        } finally {
          cache?.end();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.batchConcurrency, chunks.length) }, worker));
    return { purpose: request.purpose, decisionIds, results: results as BatchResult[] };
  }

  /**
   * POST /v1/filter: streams the input's records to the service and yields, as lines, the ones it passes on (whole,
   * or redacted by a record schema). See FilterStream for how a cut answer is reported.
   */
  filter(input: FilterInput, options: FilterOptions): FilterStream {
    return new FilterStream(this.t, input, options);
  }

  /** One page of GET /v1/consent-changes. */
  consentChangesPage(after = 0, limit = 100): Promise<ConsentChangesPage> {
    const path = `/v1/consent-changes?after=${after}&limit=${limit}`;
    return callJson(this.t, 'GET', path, consentChangesResponseSchema);
  }

  /**
   * The consent change feed as an async iterator, in commit order, from `after` on. Store the `seq` of each change
   * you have handled and pass it as `after` to resume: the feed never skips an event. With `follow` (the default) it
   * polls every `pollIntervalMs` once it has reached the end, until `signal` aborts or the loop breaks.
   */
  async *consentChanges(o: ConsentChangesOptions = {}): AsyncGenerator<ConsentChange, void, undefined> {
    const limit = o.limit ?? 100;
    let after = o.after ?? 0;
    while (!o.signal?.aborted) {
      const page = await this.consentChangesPage(after, limit);
      yield* page.changes;
      after = page.next;
      if (page.changes.length >= limit) continue;
      if (o.follow === false) return;
      try {
        await sleep(o.pollIntervalMs ?? 5000, undefined, { signal: o.signal });
      } catch {
        return;
      }
    }
  }

  /**
   * Reads the change feed in the background and applies each change to the cache; marks the cache fresh each time it
   * has read to the end. A failed poll is retried at the next interval: meanwhile, once `maxFeedSilenceMs` has passed,
   * the cache stops answering. Resumes from its own position, so no change is missed across failures.
   */
  watchFeed(o: WatchFeedOptions = {}): FeedWatcher {
    const cache = this.cache;
    if (!cache) throw new TypeError('watchFeed needs a client made with a cache');
    const limit = o.limit ?? 1000;
    const stopping = new AbortController();
    const state = { position: o.after ?? 0 };
    const loop = (async () => {
      while (!stopping.signal.aborted) {
        let more = false;
        try {
          const page = await this.consentChangesPage(state.position, limit);
          for (const change of page.changes) cache.applyChange(change);
          state.position = page.next;
          more = page.changes.length >= limit;
          if (!more) cache.feedCaughtUp();
        } catch (err) {
          o.onError?.(err);
        }
        if (more) continue;
        try {
          await sleep(o.pollIntervalMs ?? 1000, undefined, { signal: stopping.signal });
        } catch {
          return;
        }
      }
    })();
    return {
      get position() {
        return state.position;
      },
      async stop() {
        stopping.abort();
        await loop;
      },
    };
  }
}

/** A client: see OptgateClient. */
export function createClient(o: ClientOptions): OptgateClient {
  return new OptgateClient(o);
}
