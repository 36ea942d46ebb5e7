import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { Db } from '../platform/db/database';
import type { Metrics } from '../platform/metrics';
import { withTimeout } from '../platform/timeout';
import { appendToChain, type ChainItem, groupCommitSession, transactionSession } from './audit.repository';
import { type ChainedRecord, prepare } from './chain';
import { type AccountVerdict, type DecisionHeader, prepareDecision } from './decisions';
import type { AuditDraft } from './records';

/**
 * Appends records inside the caller's transaction: a consent event, an account import and their
 * records commit together, or not at all.
 */
export async function appendWithin(
  trx: Db,
  drafts: readonly AuditDraft[],
  now: Date,
): Promise<readonly ChainedRecord[]> {
  if (!drafts.length) return [];
  return (await appendToChain(transactionSession(trx), drafts.map(prepare), now)).records;
}

interface Waiting {
  readonly items: readonly ChainItem[];
  /** Records the items hold. */
  readonly size: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
  /** Monotonic time after which the caller has answered 503: its records are no longer worth writing. */
  readonly expiresAt: number;
}

const MAX_RECORDS_PER_COMMIT = 20_000;

export interface AuditWriterDeps {
  readonly pool: pg.Pool;
  readonly metrics: Pick<Metrics, 'auditCommits' | 'auditCommitRecords'>;
  readonly clock: () => Date;
  /** Bound on one commit, connection included (the statement timeout plus half a second). */
  readonly timeoutMs: number;
}

/**
 * Group commit for decision records. Callers wait until their records are committed; records
 * that arrive while a commit is under way go together into the next one, so that under load
 * many decisions share one transaction. A failed commit fails every caller in it: they answer
 * 503, never an allow without its record. A commit that does not finish within `timeoutMs`
 * (PostgreSQL paused, a dead network path) fails its callers then, its connection is cut, and the
 * next commit takes a new one: nobody queues behind a stuck commit.
 */
export class AuditWriter {
  private queue: Waiting[] = [];
  private inFlight = 0;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: AuditWriterDeps) {}

  /** Resolves once the records are durable. Callers must not answer before. */
  append(drafts: readonly AuditDraft[]): Promise<void> {
    // Encoded and hashed now, in the caller's time, not while the chain head is locked.
    return this.enqueue(drafts.map(prepare), drafts.length);
  }

  /** One decision call: a record per account judged, stored compactly. Resolves once durable. */
  appendDecision(header: DecisionHeader, verdicts: readonly AccountVerdict[]): Promise<void> {
    return this.enqueue([prepareDecision(header, verdicts)], verdicts.length);
  }

  private enqueue(items: readonly ChainItem[], size: number): Promise<void> {
    if (size === 0) return Promise.resolve();
    const expiresAt = performance.now() + this.deps.timeoutMs;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ items, size, resolve, reject, expiresAt });
      this.kick();
    });
  }

  /** Records waiting for a commit (the one under way included). */
  get pending(): number {
    return this.queue.reduce((n, w) => n + w.size, 0) + this.inFlight;
  }

  /** Resolves when everything appended so far is committed (or has failed). */
  async flushed(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      // Records queued by continuations that ran after the last check and before this line.
      if (this.queue.length) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const batch: Waiting[] = [];
      let size = 0;
      const now = performance.now();
      while (this.queue.length && (batch.length === 0 || size + this.queue[0]!.size <= MAX_RECORDS_PER_COMMIT)) {
        const next = this.queue.shift()!;
        if (next.expiresAt <= now) {
          next.reject(new Error('audit commit: waited too long'));
          continue;
        }
        batch.push(next);
        size += next.size;
      }
      if (!batch.length) continue;
      this.inFlight = size;
      try {
        const started = performance.now();
        await this.commit(batch.flatMap((w) => w.items));
        this.deps.metrics.auditCommits.observe((performance.now() - started) / 1000);
        this.deps.metrics.auditCommitRecords.observe(size);
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      } finally {
        this.inFlight = 0;
      }
    }
  }

  /** One transaction on a pool client (two round trips: see groupCommitSession), bounded as a whole. */
  private async commit(items: readonly ChainItem[]): Promise<void> {
    let client: pg.PoolClient | undefined;
    const work = (async () => {
      client = await this.deps.pool.connect();
      await appendToChain(groupCommitSession(client), items, this.deps.clock());
    })();
    try {
      await withTimeout(work, this.deps.timeoutMs, () => new Error('audit commit: timed out'));
      client?.release();
    } catch (err) {
      work.catch(() => undefined);
      if (client) discard(client);
      throw err;
    }
  }
}

/**
 * A client whose transaction failed or hung is out of step with the server: its socket is cut (the
 * server rolls the transaction back when it notices) and it leaves the pool. No ROLLBACK is sent:
 * on a hung server, that would hang too.
 */
function discard(client: pg.PoolClient): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  client.release(new Error('discarded'));
}
