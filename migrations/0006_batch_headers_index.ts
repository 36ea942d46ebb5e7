import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * The headers of batch and filter calls, by sequence number: a reader that pages through the log
 * finds the next records audit_verdicts holds from here (audit_verdicts itself has only a BRIN
 * index on seq), without passing over the single decisions in between. Small: one entry per call.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index audit_decisions_batches_idx on audit_decisions (seq) include (count)
    where account_id is null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index audit_decisions_batches_idx`.execute(db);
}
