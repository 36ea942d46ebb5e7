import type pg from 'pg';
import type { Db } from '../platform/db/database';
import * as repo from './audit.repository';
import { type AuditDraft, type ChainedRecord, type PreparedDraft, prepare, seal } from './chain';

/**
 * Appends drafts to the chain inside the caller's transaction (consent events: the event and its record commit
 * together).
 */
export async function appendInTransaction(
  trx: Db,
  drafts: readonly (AuditDraft | PreparedDraft)[],
  now: Date,
): Promise<ChainedRecord[]> {
  const prepared = drafts.map((d) => ('head' in d ? d : prepare(d)));
  const head = await repo.lockHead(trx);
  // recorded_at never goes backwards along the chain, whatever the instances' clocks say.
  const recordedAt = now.getTime() > head.recordedAt.getTime() ? now : head.recordedAt;
  const records = seal(prepared, head, recordedAt);
  await repo.insertRecords(trx, records);
  return records;
}

interface Waiting {
  readonly drafts: readonly PreparedDraft[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

const MAX_RECORDS_PER_COMMIT = 20_000;

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

  constructor(
    private readonly pool: pg.Pool,
    private readonly clock: () => Date,
  ) {}

  append(drafts: readonly AuditDraft[]): Promise<void> {
    if (drafts.length === 0) return Promise.resolve();
    // Encoded now, in the caller's time, not while the chain head is locked.
    const prepared = drafts.map(prepare);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ drafts: prepared, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      // Records queued by continuations that ran after the last check and before this line.
      if (this.queue.length) this.kick();
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
        await repo.appendByCopy(
          this.pool,
          batch.flatMap((w) => w.drafts),
          this.clock(),
        );
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      } finally {
        this.inFlight = 0;
      }
    }
  }
}
