import type { BatchResult, ConsentChange, Decision } from './types';

export interface AllowCacheOptions {
  /** No allow is kept longer than this, whatever its validUntil (default 60 s). */
  readonly maxAgeMs?: number;
  /**
   * Cached allows are used only while the change feed has been read to its end within this long (default 30 s): a
   * cache whose feed has gone quiet asks the service again.
   */
  readonly maxFeedSilenceMs?: number;
  /** At most this many entries; past it, the accounts cached longest ago are dropped first (default 100,000). */
  readonly maxEntries?: number;
  /** The clock, in milliseconds (tests). */
  readonly now?: () => number;
}

interface Entry {
  readonly expiresAt: number;
  /** Set when the allow came from a single decision, which a later single decision can be answered with. */
  readonly decision?: Decision;
  readonly item: BatchResult;
}

/**
 * A pipeline's local cache of allows (never of denies). An allow is kept until its validUntil or `maxAgeMs`, whichever
 * comes first; a change for an account, read from the change feed (OptgateClient.watchFeed) or handed over by a
 * webhook receiver (applyWebhook, invalidate), drops every entry of that account; and nothing cached is used while
 * the feed has not been read to its end for `maxFeedSilenceMs`.
 *
 * A decision asked for before a change and answered after the change was applied would otherwise be cached stale:
 * each request takes a ticket, and an answer is not stored if its account was invalidated after the ticket was taken.
 */
export class AllowCache {
  readonly maxAgeMs: number;
  readonly maxFeedSilenceMs: number;
  readonly maxEntries: number;
  private readonly now: () => number;
  private readonly byAccount = new Map<string, Map<string, Entry>>();
  private entries = 0;
  private feedReadAt = Number.NEGATIVE_INFINITY;
  private epoch = 0;
  private clearedAt = 0;
  private readonly invalidatedAt = new Map<string, number>();
  private inFlight = 0;

  constructor(o: AllowCacheOptions = {}) {
    this.maxAgeMs = o.maxAgeMs ?? 60_000;
    this.maxFeedSilenceMs = o.maxFeedSilenceMs ?? 30_000;
    this.maxEntries = o.maxEntries ?? 100_000;
    this.now = o.now ?? Date.now;
  }

  /** Whether cached allows may be used now: the feed was read to its end within `maxFeedSilenceMs`. */
  get active(): boolean {
    return this.now() - this.feedReadAt <= this.maxFeedSilenceMs;
  }

  /** How many allows are held (used or not). */
  get size(): number {
    return this.entries;
  }

  /** Called when the change feed has been read to its end (every change up to now applied). */
  feedCaughtUp(): void {
    this.feedReadAt = this.now();
  }

  /** Drops every cached allow of the account. */
  invalidate(accountId: string): void {
    this.invalidatedAt.set(accountId, ++this.epoch);
    const held = this.byAccount.get(accountId);
    if (!held) return;
    this.entries -= held.size;
    this.byAccount.delete(accountId);
  }

  /** A change read from the feed: drops the account's allows, whatever the purpose. */
  applyChange(change: Pick<ConsentChange, 'accountId'>): void {
    this.invalidate(change.accountId);
  }

  /**
   * A webhook event (already verified, see verifyWebhook): drops the allows of the account it names, as `accountId`
   * at its top level or in `data`. Returns the account invalidated; an event that names none is refused (throws),
   * so that a change of shape is noticed rather than silently ignored.
   */
  applyWebhook(event: unknown): string {
    const accountId = accountOf(event) ?? accountOf((event as { data?: unknown } | null)?.data);
    if (accountId === undefined) throw new TypeError('The webhook event names no accountId');
    this.invalidate(accountId);
    return accountId;
  }

  /** Drops everything. */
  clear(): void {
    this.clearedAt = ++this.epoch;
    this.byAccount.clear();
    this.entries = 0;
  }

  /** @internal The cached allow for the account and request key, if one may be used now. */
  lookup(accountId: string, key: string): Entry | undefined {
    if (!this.active) return undefined;
    const held = this.byAccount.get(accountId);
    const entry = held?.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > this.now()) return entry;
    held!.delete(key);
    this.entries--;
    if (!held!.size) this.byAccount.delete(accountId);
    return undefined;
  }

  /** @internal Taken before a request is sent; pass it to store, and to end when the request is over. */
  begin(): number {
    this.inFlight++;
    return this.epoch;
  }

  /** @internal */
  end(): void {
    // With no request in flight, no ticket can be older than an invalidation: the record of them can go.
    if (--this.inFlight === 0) this.invalidatedAt.clear();
  }

  /** @internal Stores an allow unless its account changed since the ticket was taken. */
  store(ticket: number, key: string, item: BatchResult, decision?: Decision): void {
    if (!item.allow || item.validUntil === undefined) return;
    if (this.clearedAt > ticket || (this.invalidatedAt.get(item.accountId) ?? 0) > ticket) return;
    const expiresAt = Math.min(Date.parse(item.validUntil), this.now() + this.maxAgeMs);
    if (!(expiresAt > this.now())) return;
    let held = this.byAccount.get(item.accountId);
    if (!held) {
      while (this.entries >= this.maxEntries && this.byAccount.size) this.evictOldest();
      held = new Map();
      this.byAccount.set(item.accountId, held);
    }
    if (!held.has(key)) this.entries++;
    held.set(key, { expiresAt, item, ...(decision ? { decision } : {}) });
  }

  private evictOldest(): void {
    const [oldest, held] = this.byAccount.entries().next().value!;
    this.byAccount.delete(oldest);
    this.entries -= held.size;
  }
}

function accountOf(value: unknown): string | undefined {
  const id = (value as { accountId?: unknown } | null | undefined)?.accountId;
  return typeof id === 'string' ? id : undefined;
}
