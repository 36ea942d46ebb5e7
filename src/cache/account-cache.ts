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

/**
 * Per-account values (here: status and consent state), answered from memory while the instance
 * is coherent, loaded from PostgreSQL otherwise. Exact, not eventually consistent: an entry is
 * dropped on every invalidation, and a load that overlapped an invalidation of its account is
 * used for the request that made it but never kept.
 */
export class AccountCache<V extends object> {
  private readonly lru: LRUCache<string, V>;
  private readonly loading = new Map<string, Set<Load>>();

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
      return this.withAbsent(accountIds, await this.deps.load(accountIds));
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
      const loaded = this.withAbsent(missing, await this.deps.load(missing));
      // Kept only if nothing about these accounts changed while they were read, and the instance is still coherent.
      const keep = load.stale !== 'all' && coherence.coherent();
      for (const [id, v] of loaded) {
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

  private withAbsent(accountIds: readonly string[], loaded: Map<string, V>): Map<string, V> {
    for (const id of accountIds) if (!loaded.has(id)) loaded.set(id, this.deps.absent);
    return loaded;
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
