import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Decision records, compact (audit format 2). A header per decision request holds what every
 * account judged shares; a single decision keeps its one verdict inline, a batch or filter call
 * has one narrow row per account. No per-record hash is stored for them: `links` holds the chain
 * link before every 64th record of the header and the link after its last one, enough to rebuild
 * and check any record's link from at most 63 of its neighbours. Records keep their sequence
 * numbers in the one chain with audit_records (consent events, staff actions, and decisions
 * written before this migration).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table audit_decisions (
      seq bigint primary key,
      count integer not null check (count > 0),
      recorded_at timestamptz not null,
      decision_id uuid not null,
      endpoint text not null check (endpoint in ('single', 'batch', 'filter')),
      client_id text not null,
      request_id text not null,
      purpose text not null,
      categories text not null,
      recipient text,
      reference text,
      evaluated_at timestamptz not null,
      account_id text,
      verdict bytea,
      links bytea not null,
      check ((account_id is null) = (verdict is null)),
      check (account_id is null or count = 1)
    )`.execute(db);
  await sql`create index audit_decisions_account_idx on audit_decisions (account_id, seq)
    where account_id is not null`.execute(db);
  await sql`create index audit_decisions_time_idx on audit_decisions using brin (recorded_at)`.execute(db);

  await sql`
    create table audit_verdicts (
      seq bigint not null,
      account_id text not null,
      verdict bytea not null
    )`.execute(db);
  await sql`create index audit_verdicts_account_idx on audit_verdicts (account_id, seq)`.execute(db);
  // Appended in sequence order: a block range index finds a range of sequence numbers for almost nothing.
  await sql`create index audit_verdicts_seq_idx on audit_verdicts using brin (seq) with (pages_per_range = 8)`.execute(
    db,
  );

  for (const table of ['audit_decisions', 'audit_verdicts']) {
    await sql`create trigger ${sql.raw(`${table}_append_only`)} before update or delete on ${sql.table(table)}
      for each row execute function optgate_refuse_change()`.execute(db);
    await sql`create trigger ${sql.raw(`${table}_no_truncate`)} before truncate on ${sql.table(table)}
      for each statement execute function optgate_refuse_change()`.execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table audit_verdicts`.execute(db);
  await sql`drop table audit_decisions`.execute(db);
}
