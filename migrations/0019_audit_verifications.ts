import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Integrity at a glance (issue 13): one row per verification of the audit log in the database, by the scheduled job
 * (`audit-verify`, incremental: from where the last intact run stopped) or by `npx optgate audit verify --db` (the
 * whole log). A run's end (`to_seq`, `to_hash`, the Merkle `frontier` there) is where the next incremental run starts,
 * when it was intact. Append-only like the log: the runtime role may only select and insert, and the triggers refuse
 * changes even to the owner's ordinary sessions. `problem` is a short text naming a sequence number, never subscriber
 * data.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table audit_verifications (
      id bigint generated always as identity primary key,
      started_at timestamptz not null,
      finished_at timestamptz not null,
      from_seq bigint not null check (from_seq >= 0),
      to_seq bigint not null check (to_seq >= 0),
      to_hash text check (to_hash ~ '^[0-9a-f]{64}$'),
      frontier text,
      records_checked bigint not null check (records_checked >= 0),
      result text not null check (result in ('intact', 'broken', 'error')),
      problem text check (char_length(problem) <= 500),
      problem_seq bigint,
      ran_by text not null check (ran_by in ('job', 'cli', 'console'))
    )`.execute(db);
  // The latest intact run (where the next one starts) and the latest broken one: one index read each.
  await sql`create index audit_verifications_intact_idx on audit_verifications (id) where result = 'intact'`.execute(
    db,
  );
  await sql`create index audit_verifications_broken_idx on audit_verifications (id) where result = 'broken'`.execute(
    db,
  );
  await sql`create trigger audit_verifications_append_only before update or delete on audit_verifications
    for each row execute function optgate_refuse_change()`.execute(db);
  await sql`create trigger audit_verifications_no_truncate before truncate on audit_verifications
    for each statement execute function optgate_refuse_change()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table audit_verifications`.execute(db);
}
