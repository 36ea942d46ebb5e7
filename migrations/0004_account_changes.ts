import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Which accounts changed (consents, status), tagged with the writing transaction's id. An
 * instance's consent cache catches up from it by comparing snapshots: the rows visible now and
 * not in its previous snapshot are exactly the changes committed in between, whatever order
 * their transactions began in. A null account id means every account. Rows are pruned after a
 * short retention.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table account_changes (
      xid xid8 not null default pg_current_xact_id(),
      account_id text,
      changed_at timestamptz not null default now()
    )`.execute(db);
  await sql`create index account_changes_xid_idx on account_changes (xid)`.execute(db);
  await sql`create index account_changes_time_idx on account_changes using brin (changed_at)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table account_changes`.execute(db);
}
