import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Audit format 3 (src/audit/chain.ts): a record that names an account commits to a salted hash of
 * its id. Plain records keep their salt (`account_salt`, 32 hex digits); a decision call keeps one
 * random seed (`account_seed`, 16 bytes) from which each of its records' salts is derived, so batch
 * verdicts grow by nothing. Records written before stay format 1 or 2 (both columns null).
 *
 * Accounts remember when they were closed (`closed_at`), so that archival can pseudonymise the ids
 * of accounts closed longer than `AUDIT_PSEUDONYMISE_AFTER_DAYS`. Accounts closed before this
 * migration take their last update as that time.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_records add column account_salt text check (account_salt ~ '^[0-9a-f]{32}$')`.execute(db);
  await sql`alter table audit_decisions add column account_seed bytea check (length(account_seed) = 16)`.execute(db);
  await sql`alter table accounts add column closed_at timestamptz`.execute(db);
  await sql`update accounts set closed_at = updated_at where status = 'closed'`.execute(db);
  await sql`create index accounts_closed_idx on accounts (closed_at) where closed_at is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index accounts_closed_idx`.execute(db);
  await sql`alter table accounts drop column closed_at`.execute(db);
  await sql`alter table audit_decisions drop column account_seed`.execute(db);
  await sql`alter table audit_records drop column account_salt`.execute(db);
}
