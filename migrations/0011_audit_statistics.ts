import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Summaries are not enough: a log that grew by a million records since autovacuum last analyzed it
 * has no statistics saying so, and the planner, expecting a few rows, read a page of verdicts with a
 * parallel sequential scan of the whole table (half a second a page). `optgate_summarize_brin()`
 * (run by the signing job each tick, an export and `verify --db` at their start) now also analyzes
 * each audit table once a fifth of it is new since its last analysis.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create or replace function optgate_summarize_brin() returns bigint language plpgsql security definer
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
}

export async function down(): Promise<void> {
  // The function of 0009 stays; it is only less thorough.
}
