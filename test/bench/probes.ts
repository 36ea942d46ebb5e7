import { readFileSync } from 'node:fs';
import pg from 'pg';
import { BATCH_CATEGORIES } from './scenarios';
import { BENCH_PURPOSE, type SeedResult } from './seed';

/**
 * What the table reports besides throughput: the audit's size on disk, an instance's memory with
 * its cache full, and how long a consent write waits for the other instances. Each probe talks to
 * the services through their API and /metrics, and to PostgreSQL only for sizes.
 */

export const json = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

/** The audit tables on disk (heap, indexes, TOAST) and the records in the chain. */
export interface AuditFootprint {
  readonly bytes: number;
  readonly records: number;
}

export async function auditFootprint(databaseUrl: string): Promise<AuditFootprint> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ bytes: string; records: string }>(
      // The log tables are partitioned by month: their size is their partitions'.
      `select (select coalesce(sum(pg_total_relation_size(t.relid)), 0) from unnest(array['audit_records',
                'audit_decisions', 'audit_verdicts']::regclass[]) p, pg_partition_tree(p) t where t.isleaf) as bytes,
              coalesce((select seq from audit_head), 0) as records`,
    );
    return { bytes: Number(rows[0]!.bytes), records: Number(rows[0]!.records) };
  } finally {
    await client.end();
  }
}

/** Bytes on disk per audit record written between two footprints (undefined when none was). */
export function bytesPerRecord(before: AuditFootprint, after: AuditFootprint): number | undefined {
  const records = after.records - before.records;
  return records > 0 ? (after.bytes - before.bytes) / records : undefined;
}

/**
 * Asks one instance about every seeded account, in batch calls of `batchSize`, `concurrency` calls
 * at a time, so that its cache holds them all. A 503 (the audit commit or the batch queue is full:
 * a correct answer under load) is asked again after its Retry-After, up to 10 times. Returns the
 * seconds it took.
 */
export async function fillCache(
  url: string,
  token: string,
  data: SeedResult,
  batchSize: number,
  concurrency: number,
): Promise<number> {
  const started = performance.now();
  const ids = data.accountIds;
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const accountIds = ids.slice(next, next + batchSize);
      next += batchSize;
      for (let attempt = 1; ; attempt++) {
        const r = await fetch(`${url}/v1/decisions/batch`, {
          method: 'POST',
          headers: json(token),
          body: JSON.stringify({ purpose: BENCH_PURPOSE, categories: BATCH_CATEGORIES, accountIds }),
        });
        const text = await r.text();
        if (r.status === 200) break;
        if (r.status !== 503 || attempt === 10)
          throw new Error(`filling the cache: batch call answered ${r.status} ${text.slice(0, 300)}`);
        await new Promise((resolve) => setTimeout(resolve, 1000 * Number(r.headers.get('retry-after') ?? 1)));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (performance.now() - started) / 1000;
}

export interface InstanceMemory {
  /** Resident set of the process, bytes. */
  readonly rss: number;
  /** optgate_cache_entries and optgate_cache_bytes (the cache's own estimate). */
  readonly entries: number;
  readonly cacheBytes: number;
  readonly coherent: boolean;
}

export async function instanceMemory(url: string, pid: number): Promise<InstanceMemory> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return {
    rss: rssKb * 1024,
    entries: gauge('optgate_cache_entries'),
    cacheBytes: gauge('optgate_cache_bytes'),
    coherent: gauge('optgate_cache_coherent') === 1,
  };
}

/** Waits until every instance answers from its cache (lease held, caught up, subscribed). */
export async function untilCoherent(urls: readonly string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const url of urls) {
    for (;;) {
      const metrics = await (await fetch(`${url}/metrics`)).text();
      if (/^optgate_cache_coherent 1$/m.test(metrics)) break;
      if (Date.now() > deadline) throw new Error(`${url}: its cache did not become coherent within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export interface RevocationResult {
  /** Milliseconds per consent write, in the order made. */
  readonly writeMs: readonly number[];
  /** Decisions after a write that still gave the state before it (must be 0). */
  readonly stale: number;
}

/**
 * Revocation acknowledgement: `cycles` consent writes on the first instance (grant and revoke in
 * turn) while every instance holds the account in its cache (each has just answered a decision
 * about it twice: a load, then a hit). The write is answered only once every instance with a lease
 * has dropped the entry, so its latency is the commit plus the slowest acknowledgement. After each
 * write every instance is asked again, and an answer that does not match the write is counted.
 * Uses accounts of its own, so the seeded data the load phases check against is left as it was.
 */
export async function revocationLatency(
  urls: readonly string[],
  token: string,
  noticeVersion: string,
  cycles: number,
): Promise<RevocationResult> {
  const category = 'web_browsing_history';
  const accounts = Array.from({ length: 20 }, (_, i) => `bench-revocation-${String(i).padStart(2, '0')}`);
  const call = async (url: string, method: string, path: string, body: unknown) => {
    const r = await fetch(url + path, { method, headers: json(token), body: JSON.stringify(body) });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as { allow?: boolean };
  };
  await call(urls[0]!, 'POST', '/v1/accounts', {
    accounts: accounts.map((accountId) => ({ accountId, status: 'active' })),
  });
  const decide = (url: string, accountId: string) =>
    call(url, 'POST', '/v1/decisions', { accountId, purpose: BENCH_PURPOSE, categories: [category] });

  const writeMs: number[] = [];
  let stale = 0;
  for (let cycle = 0; cycle < cycles; cycle++) {
    const accountId = accounts[cycle % accounts.length]!;
    const grant = Math.floor(cycle / accounts.length) % 2 === 0;
    for (const url of urls) for (let k = 0; k < 2; k++) await decide(url, accountId);
    const started = performance.now();
    await call(urls[0]!, 'PUT', `/v1/accounts/${accountId}/consents`, {
      channel: 'call_center',
      actor: { type: 'staff', id: 'bench-agent' },
      verification: 'account_pin',
      reference: `BENCH-${cycle}`,
      noticeVersion,
      affirmative: true,
      changes: [{ purpose: BENCH_PURPOSE, category, choice: grant ? 'grant' : 'revoke' }],
    });
    writeMs.push(performance.now() - started);
    for (const url of urls) if ((await decide(url, accountId)).allow !== grant) stale++;
  }
  return { writeMs, stale };
}

/** The q-quantile (0..1) of some numbers, nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
