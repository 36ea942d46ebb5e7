import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * BRIN indexes know nothing of pages written since they were last summarized, and a query must read
 * every such page: on a log that grows by thousands of records a second, until autovacuum comes
 * round, every page of an export re-read the whole unsummarized tail (the export ran at a few
 * thousand rows a second). Summaries now keep up: `optgate_summarize_brin()` summarizes the new
 * ranges of every BRIN index (the signing job calls it each tick, an export and `verify --db` at
 * their start; it runs as the owner, which the runtime role is not), and autovacuum is asked to
 * summarize each range as it fills.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create function optgate_summarize_brin() returns bigint language plpgsql security definer
    set search_path = pg_catalog, public as $$
    declare
      i regclass;
      n bigint := 0;
    begin
      for i in select c.oid::regclass from pg_class c
               join pg_am a on a.oid = c.relam join pg_namespace ns on ns.oid = c.relnamespace
               where a.amname = 'brin' and ns.nspname = 'public' and c.relkind = 'i'
      loop
        n := n + brin_summarize_new_values(i);
      end loop;
      return n;
    end $$`.execute(db);
  for (const index of [
    'audit_records_time_idx',
    'account_changes_time_idx',
    'audit_decisions_time_idx',
    'audit_verdicts_seq_idx',
  ]) {
    await sql`alter index ${sql.raw(index)} set (autosummarize = on)`.execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function optgate_summarize_brin()`.execute(db);
}
