import type pg from 'pg';
import type { Db } from '../platform/db/database';
import { appendToChain, insertAsJson, insertByCopy, sqlOf, sqlOfClient } from './audit.repository';
import { type ChainedRecord, type PreparedDraft, prepare } from './chain';
import type { AuditDraft } from './records';

/**
 * Appends records inside the caller's transaction: a consent event, an account import and their
 * records commit together, or not at all.
 */
export function appendWithin(trx: Db, drafts: readonly AuditDraft[], now: Date): Promise<ChainedRecord[]> {
  const sql = sqlOf(trx);
  return appendToChain(sql, insertAsJson(sql), drafts.map(prepare), now);
}

interface Waiting {
  readonly drafts: readonly PreparedDraft[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

const MAX_RECORDS_PER_COMMIT = 20_000;

export interface AuditWriterDeps {
  readonly pool: pg.Pool;
  readonly clock: () => Date;
}

/**
 * Group commit for decision records. Callers wait until their records are committed; records
 * that arrive while a commit is under way go together into the next one, so that under load
 * many decisions share one transaction. A failed commit fails every caller in it: they answer
 * 503, never an allow without its record.
 */
export class AuditWriter {
  private queue: Waiting[] = [];
  private inFlight = 0;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: AuditWriterDeps) {}

  /** Resolves once the records are durable. Callers must not answer before. */
  append(drafts: readonly AuditDraft[]): Promise<void> {
    if (drafts.length === 0) return Promise.resolve();
    // Encoded now, in the caller's time, not while the chain head is locked.
    const prepared = drafts.map(prepare);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ drafts: prepared, resolve, reject });
      this.kick();
    });
  }

  /** Records waiting for a commit (the one under way included). */
  get pending(): number {
    return this.queue.reduce((n, w) => n + w.drafts.length, 0) + this.inFlight;
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
      while (
        this.queue.length &&
        (batch.length === 0 || size + this.queue[0]!.drafts.length <= MAX_RECORDS_PER_COMMIT)
      ) {
        const next = this.queue.shift()!;
        batch.push(next);
        size += next.drafts.length;
      }
      this.inFlight = size;
      try {
        await this.commit(batch.flatMap((w) => w.drafts));
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      } finally {
        this.inFlight = 0;
      }
    }
  }

  /** One transaction on a pool client, the records streamed with COPY. */
  private async commit(drafts: readonly PreparedDraft[]): Promise<void> {
    const client = await this.deps.pool.connect();
    let failed: Error | undefined;
    try {
      await client.query('begin');
      await appendToChain(sqlOfClient(client), insertByCopy(client), drafts, this.deps.clock());
      await client.query('commit');
    } catch (err) {
      failed = err as Error;
      await client.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      // A client that failed mid-COPY may be out of step with the server: it is discarded, not reused.
      client.release(failed);
    }
  }
}
