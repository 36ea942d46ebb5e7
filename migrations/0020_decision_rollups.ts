import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Hourly counts of the audit log, for the console's charts (issue 13): read by the charts instead of the log.
 *
 * `audit_rollup_hourly`: one row per hour (UTC, the records' `recorded_at`) and kind of count:
 * - `decision`: decision records (one per account judged) by client, purpose and outcome;
 * - `denial`: the denied categories of decision records (one per category refused) by client, purpose and reason;
 * - `consent`: consent_event records by client (empty for the system's events), purpose and event kind.
 * Columns that do not apply to a kind are ''. The primary key starts with (kind, hour): the charts' index.
 *
 * `audit_rollup_state`: one row, how far the log has been counted (`last_seq`, and the time of that record); the
 * rollup job locks it, counts the records after it, adds them and moves it, in one transaction.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table audit_rollup_hourly (
      kind text not null check (kind in ('decision', 'denial', 'consent')),
      hour timestamptz not null,
      client_id text not null default '',
      purpose text not null default '',
      outcome text not null default '' check (outcome in ('', 'allow', 'deny')),
      reason text not null default '',
      event text not null default '',
      count bigint not null check (count > 0),
      primary key (kind, hour, client_id, purpose, outcome, reason, event)
    )`.execute(db);
  await sql`
    create table audit_rollup_state (
      id integer primary key check (id = 1),
      last_seq bigint not null check (last_seq >= 0),
      last_recorded_at timestamptz
    )`.execute(db);
  // From the beginning of the online log: the job catches up on history in bounded steps.
  await sql`insert into audit_rollup_state (id, last_seq) values (1, 0)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table audit_rollup_state`.execute(db);
  await sql`drop table audit_rollup_hourly`.execute(db);
}
