import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * A single decision answered to a request that came without its own X-Request-Id takes the id optgate issued for
 * the request as its decision id: the two are the same, and the header stores it once (`request_id` null means
 * "the decision id"). 37 bytes less per such decision; the record, its content and its hash are unchanged.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_decisions alter column request_id drop not null`.execute(db);
}

/** Only while no header relies on it: with one, PostgreSQL refuses, and the rows (append-only) cannot be changed. */
export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_decisions alter column request_id set not null`.execute(db);
}
