import { LRUCache } from 'lru-cache';
import type { Metrics } from '../platform/metrics';
import type { CacheCoherence, Invalidation } from './coherence';

export interface AccountCacheDeps<V extends object> {
  readonly coherence: CacheCoherence;
  /** Reads the accounts from the system of record; an account it does not return is cached as `absent`. */
  readonly load: (accountIds: readonly string[]) => Promise<Map<string, V>>;
  readonly absent: V;
  /** Approximate bytes an entry holds, for the byte bound. */
  readonly sizeOf: (value: V) => number;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly metrics: Metrics;
}

/**
 * A load in flight: an invalidation of one of its accounts (or of all) while it runs keeps its result out of the cache.
 */
interface Load {
  stale: Set<string> | 'all' | undefined;
}

/** Misses of small requests are read together, up to this many accounts in one query. */
const COALESCE_UP_TO = 1000;
/** Reads in flight before further misses wait and share the next query. */
const READS_AT_ONCE = 4;

interface Waiting<V> {
  readonly accountIds: readonly string[];
  readonly resolve: (loaded: Map<string, V>) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Per-account values (here: status and consent state), answered from memory while the instance
 * is coherent, loaded from PostgreSQL otherwise. Exact, not eventually consistent: an entry is
 * dropped on every invalidation, and a load that overlapped an invalidation of its account is
 * used for the request that made it but never kept.
 */
export class AccountCache<V extends object> {
  private readonly lru: LRUCache<string, V>;
  private readonly loading = new Map<string, Set<Load>>();
  private waiting: Waiting<V>[] = [];
  private waitingIds = 0;
  private reading = 0;

  constructor(private readonly deps: AccountCacheDeps<V>) {
    this.lru = new LRUCache<string, V>({
      max: deps.maxEntries,
      maxSize: deps.maxBytes,
      sizeCalculation: (v, key) => deps.sizeOf(v) + 2 * key.length + 64,
    });
    deps.coherence.onInvalidate((accounts) => this.invalidate(accounts));
  }

  get entries(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }

  /** The values for these accounts (each id once in the map). */
  async getMany(accountIds: readonly string[]): Promise<Map<string, V>> {
    const { coherence, metrics } = this.deps;
    const found = new Map<string, V>();
    if (!coherence.coherent()) {
      metrics.cacheRequests.inc({ result: 'bypass' }, accountIds.length);
      const loaded = await this.read(accountIds);
      for (const id of accountIds) found.set(id, loaded.get(id) ?? this.deps.absent);
      return found;
    }
    const misses = new Set<string>();
    for (const id of accountIds) {
      const v = this.lru.get(id);
      if (v) found.set(id, v);
      else misses.add(id);
    }
    if (found.size) metrics.cacheRequests.inc({ result: 'hit' }, found.size);
    if (!misses.size) return found;
    const missing = [...misses];
    metrics.cacheRequests.inc({ result: 'miss' }, missing.length);

    const load: Load = { stale: undefined };
    for (const id of missing) {
      const set = this.loading.get(id);
      if (set) set.add(load);
      else this.loading.set(id, new Set([load]));
    }
    try {
      const loaded = await this.read(missing);
      // Kept only if nothing about these accounts changed while they were read, and the instance is still coherent.
      const keep = load.stale !== 'all' && coherence.coherent();
      for (const id of missing) {
        const v = loaded.get(id) ?? this.deps.absent;
        found.set(id, v);
        if (keep && !(load.stale instanceof Set && load.stale.has(id))) this.lru.set(id, v);
      }
      return found;
    } finally {
      for (const id of missing) {
        const set = this.loading.get(id);
        set?.delete(load);
        if (set?.size === 0) this.loading.delete(id);
      }
    }
  }

  /**
   * Reads accounts from the system of record. A small request reads at once while fewer than
   * `READS_AT_ONCE` reads are in flight; otherwise it waits for one of them to finish and shares the
   * next query with the others that missed meanwhile (so an idle instance adds no latency, and a
   * loaded one sends one query for many single decisions). A large request reads alone. The result
   * may hold other callers' accounts too: callers take their own.
   */
  private read(accountIds: readonly string[]): Promise<Map<string, V>> {
    if (accountIds.length > COALESCE_UP_TO / 2) return this.load(accountIds);
    return new Promise((resolve, reject) => {
      this.waiting.push({ accountIds, resolve, reject });
      this.waitingIds += accountIds.length;
      if (this.reading < READS_AT_ONCE || this.waitingIds >= COALESCE_UP_TO) this.flush();
    });
  }

  private async load(accountIds: readonly string[]): Promise<Map<string, V>> {
    this.deps.metrics.cacheReads.inc();
    this.reading++;
    try {
      return await this.deps.load(accountIds);
    } finally {
      this.reading--;
      if (this.waiting.length) this.flush();
    }
  }

  private flush(): void {
    const waiting = this.waiting;
    if (!waiting.length) return;
    this.waiting = [];
    this.waitingIds = 0;
    const ids = new Set<string>();
    for (const w of waiting) for (const id of w.accountIds) ids.add(id);
    this.load([...ids]).then(
      (loaded) => {
        for (const w of waiting) w.resolve(loaded);
      },
      (err: unknown) => {
        for (const w of waiting) w.reject(err);
      },
    );
  }

  private invalidate(accounts: Invalidation): void {
    if (accounts === 'all') {
      this.lru.clear();
      for (const loads of this.loading.values()) for (const l of loads) l.stale = 'all';
      return;
    }
    for (const id of accounts) {
      this.lru.delete(id);
      const loads = this.loading.get(id);
      if (!loads) continue;
      for (const l of loads) {
        if (l.stale === undefined) l.stale = new Set([id]);
        else if (l.stale !== 'all') l.stale.add(id);
      }
    }
  }
}
