import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * One act, one receipt: a change set (a save in the portal, revoke-all, an API call, a staff change) is signed once,
 * when it is recorded, and the signed receipt is kept (`consent_receipts.jws`), so that every download returns the
 * same bytes. `event_ids` lists the act's consent events in the order they were recorded; each of those events names
 * its receipt (`consent_events.receipt_id`, set at insert). Events recorded before this migration, and the system's
 * expiries and lapses, get a receipt of their own when one is first asked for, with the event's id as its id.
 * Append-only like the history: the runtime role may only select and insert, and the triggers refuse even the
 * owner's updates and deletes.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table consent_receipts (
      receipt_id uuid primary key,
      account_id text not null references accounts (account_id),
      recorded_at timestamptz not null,
      event_ids uuid[] not null check (cardinality(event_ids) >= 1),
      jws text not null
    )`.execute(db);
  await sql`create index consent_receipts_account_idx on consent_receipts (account_id, recorded_at)`.execute(db);
  await sql`create trigger consent_receipts_append_only before update or delete on consent_receipts
    for each row execute function optgate_refuse_change()`.execute(db);
  await sql`create trigger consent_receipts_no_truncate before truncate on consent_receipts
    for each statement execute function optgate_refuse_change()`.execute(db);
  // Inserted after the receipt, in the same transaction.
  await sql`alter table consent_events add column receipt_id uuid references consent_receipts (receipt_id)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table consent_events drop column receipt_id`.execute(db);
  await sql`drop table consent_receipts`.execute(db);
}
