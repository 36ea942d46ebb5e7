import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * BRIN indexes know nothing of pages written since they were last summarized, and a query must read
 * every such page: on a log that grows by thousands of records a second, until autovacuum comes
 * round, every page of an export re-read the whole unsummarized tail (the export ran at a few
 * thousand rows a second). Summaries now keep up: `optgate_summarize_brin()` summarizes the new
 * ranges of every BRIN index (the signing job calls it each tick, an export and `verify --db` at
 * their start; it runs as the owner, which the runtime role is not), and autovacuum is asked to
 * summarize each range as it fills. Summaries are not enough either: a log that grew by a million
 * records since autovacuum last analyzed it has no statistics saying so, and the planner read a page
 * of verdicts with a parallel sequential scan of the whole table; so the function also analyzes
 * each audit table once a fifth of it is new since its last analysis.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create function optgate_summarize_brin() returns bigint language plpgsql security definer
    set search_path = pg_catalog, public as $$
    declare
      i regclass;
      t record;
      n bigint := 0;
    begin
      for i in select c.oid::regclass from pg_class c
               join pg_am a on a.oid = c.relam join pg_namespace ns on ns.oid = c.relnamespace
               where a.amname = 'brin' and ns.nspname = 'public' and c.relkind = 'i'
      loop
        n := n + brin_summarize_new_values(i);
      end loop;
      for t in select s.relid::regclass as rel from pg_stat_user_tables s
               where s.schemaname = 'public'
                 and s.relname in ('audit_records', 'audit_decisions', 'audit_verdicts', 'audit_tree_nodes')
                 and s.n_mod_since_analyze > 1000
                 and s.n_mod_since_analyze > 0.2 * greatest(s.n_live_tup - s.n_mod_since_analyze, 0)
      loop
        execute format('analyze %s', t.rel);
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
