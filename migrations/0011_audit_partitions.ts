import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * The audit log, partitioned by month (UTC) so that it stays bounded for years: a month's records,
 * decision headers and verdicts are each one partition (`audit_records_p202612`, …), and a month
 * past the retention period is archived to a file and then dropped whole (src/audit/archive.ts).
 * Verdicts carry the day of their header (`recorded_on`, 4 bytes) as their partition key.
 *
 * A database migrated with records keeps them: each table becomes the partition `…_legacy`,
 * covering everything up to the end of the month of its last record (`audit_settings.legacy_until`);
 * later months get their own partitions. A fresh database has no legacy partition.
 *
 * Partitions are created by `optgate_audit_partition(at)` (security definer: the runtime role does
 * not own the tables): the append path calls it for the month it writes in, and the retention job
 * creates the coming months ahead. Dropping one is `optgate_drop_audit_partition(period)`, which
 * refuses unless the period is past the retention in `audit_settings` (written by the owner, from
 * the configuration, when it migrates), an archive of exactly its records is registered, and a
 * signed tree head covers them: the runtime role can drop nothing else.
 */
const TABLES = [
  { name: 'audit_records', key: 'recorded_at' },
  { name: 'audit_decisions', key: 'recorded_at' },
  { name: 'audit_verdicts', key: 'recorded_on' },
] as const;

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create table audit_settings (
    id integer primary key check (id = 1),
    retention_months integer not null check (retention_months >= 1),
    legacy_until date
  )`.execute(db);
  await sql`insert into audit_settings (id, retention_months) values (1, 24)`.execute(db);

  await sql`alter table audit_verdicts add column recorded_on date not null default '-infinity'`.execute(db);
  await sql`alter table audit_verdicts alter column recorded_on drop default`.execute(db);

  // The month after the last record, when there are records.
  const { rows } = await sql<{ until: string | null }>`
    select to_char(date_trunc('month', greatest(
      (select max(recorded_at) from audit_records), (select max(recorded_at) from audit_decisions)
    ) at time zone 'UTC') + interval '1 month', 'YYYY-MM-DD') as until`.execute(db);
  const legacyUntil = rows[0]?.until ?? null;

  for (const { name, key } of TABLES) {
    const legacy = `${name}_legacy`;
    await sql`alter table ${sql.table(name)} rename to ${sql.table(legacy)}`.execute(db);
    // Index and trigger names are the parent's from now on; the parent's triggers are cloned onto every partition.
    const { rows: indexes } = await sql<{ name: string }>`
      select indexrelid::regclass::text as name from pg_index where indrelid = ${legacy}::regclass`.execute(db);
    for (const index of indexes) {
      const renamed = index.name.endsWith('_pkey') ? `${legacy}_pkey` : `${index.name}_legacy`;
      await sql`alter index ${sql.table(index.name)} rename to ${sql.table(renamed)}`.execute(db);
    }
    for (const trigger of ['append_only', 'no_truncate']) {
      await sql`drop trigger ${sql.raw(`${name}_${trigger}`)} on ${sql.table(legacy)}`.execute(db);
    }
    await sql`create table ${sql.table(name)} (like ${sql.table(legacy)} including defaults including constraints)
      partition by range (${sql.ref(key)})`.execute(db);
  }

  // By seq, not unique: a unique index on a partitioned table must hold the partition key, (seq, recorded_at), and be
  // 8 bytes wider per record for no more than the chain's head lock already guarantees.
  await sql`create index audit_records_seq_idx on audit_records (seq)`.execute(db);
  await sql`create index audit_records_account_idx on audit_records (account_id, seq)`.execute(db);
  await sql`create index audit_records_time_idx on audit_records using brin (recorded_at)`.execute(db);
  await sql`create index audit_decisions_seq_idx on audit_decisions (seq)`.execute(db);
  await sql`create index audit_decisions_account_idx on audit_decisions (account_id, seq)
    where account_id is not null`.execute(db);
  await sql`create index audit_decisions_time_idx on audit_decisions using brin (recorded_at)`.execute(db);
  await sql`create index audit_decisions_batches_idx on audit_decisions (seq) include (count)
    where account_id is null`.execute(db);
  await sql`create index audit_verdicts_account_idx on audit_verdicts (account_id, seq)`.execute(db);
  await sql`create index audit_verdicts_seq_idx on audit_verdicts using brin (seq) with (pages_per_range = 8)`.execute(
    db,
  );
  for (const { name } of TABLES) {
    await sql`create trigger ${sql.raw(`${name}_append_only`)} before update or delete on ${sql.table(name)}
      for each row execute function optgate_refuse_change()`.execute(db);
    await sql`create trigger ${sql.raw(`${name}_no_truncate`)} before truncate on ${sql.table(name)}
      for each statement execute function optgate_refuse_change()`.execute(db);
  }

  for (const { name } of TABLES) {
    const legacy = `${name}_legacy`;
    if (legacyUntil) {
      // Attaching builds the parent's index on seq in place of the old primary key, and adopts the other indexes.
      if (name !== 'audit_verdicts') {
        await sql`alter table ${sql.table(legacy)} drop constraint ${sql.raw(`${legacy}_pkey`)}`.execute(db);
      }
      await sql`alter table ${sql.table(name)} attach partition ${sql.table(legacy)}
        for values from (minvalue) to (${sql.lit(legacyUntil)})`.execute(db);
      // The legacy table's own truncate trigger (statement triggers are not cloned).
      await sql`create trigger ${sql.raw(`${legacy}_no_truncate`)} before truncate on ${sql.table(legacy)}
        for each statement execute function optgate_refuse_change()`.execute(db);
    } else {
      await sql`drop table ${sql.table(legacy)}`.execute(db);
    }
  }
  await sql`update audit_settings set legacy_until = ${legacyUntil}::date`.execute(db);

  // Archives of dropped months: what the verifier needs to continue the chain and the tree after them.
  await sql`create table audit_archives (
    period text primary key check (period ~ '^([0-9]{4}-[0-9]{2}|legacy)$'),
    first_seq bigint,
    last_seq bigint check (last_seq >= first_seq),
    prev_hash text,
    last_hash text,
    rows bigint not null,
    -- Records whose account id the file holds pseudonymised (format 3, accounts closed long enough).
    pseudonymised bigint not null default 0,
    file text not null,
    bytes bigint not null,
    sha256 text not null,
    manifest text not null,
    tree_head text,
    frontier text,
    archived_at timestamptz not null,
    -- An empty month is archived too (an empty file, a signed manifest saying so), with nothing else.
    check ((rows = 0) = (first_seq is null) and num_nulls(first_seq, last_seq, prev_hash, last_hash, tree_head,
      frontier) in (0, 6))
  )`.execute(db);
  // The hashes of the archived records that share a 64-leaf tile with the first online one: proofs still need them.
  await sql`create table audit_archive_edge (seq bigint primary key, hash text not null)`.execute(db);
  for (const table of ['audit_archives', 'audit_archive_edge']) {
    await sql`create trigger ${sql.raw(`${table}_append_only`)} before update or delete on ${sql.table(table)}
      for each row execute function optgate_refuse_change()`.execute(db);
  }

  await sql`create function optgate_audit_partition(at timestamptz) returns boolean language plpgsql
    security definer set search_path = pg_catalog, public as $$
    declare
      m date := date_trunc('month', at at time zone 'UTC')::date;
      suffix text := to_char(m, 'YYYYMM');
      t text;
      i regclass;
    begin
      if to_regclass('public.audit_verdicts_p' || suffix) is not null
         or m < coalesce((select legacy_until from audit_settings), '-infinity') then
        return false;
      end if;
      -- A month archived (or before one) stays closed: a record dated in it is refused, not given a new partition.
      if exists (select 1 from audit_archives a where a.period <> 'legacy' and a.period >= to_char(m, 'YYYY-MM')) then
        raise exception 'audit log: % is archived, no record can be written in it', to_char(m, 'YYYY-MM')
          using errcode = '42501';
      end if;
      begin
        foreach t in array array['audit_records', 'audit_decisions'] loop
          execute format('create table public.%I partition of public.%I for values from (%L) to (%L)',
            t || '_p' || suffix, t,
            m::timestamp at time zone 'UTC', (m + interval '1 month')::timestamp at time zone 'UTC');
        end loop;
        -- Verdicts last: their partition's existence says the month is complete.
        execute format('create table public.%I partition of public.audit_verdicts for values from (%L) to (%L)',
          'audit_verdicts_p' || suffix, m, (m + interval '1 month')::date);
      exception when duplicate_table or unique_violation then
        return false;
      end;
      for t in select 'public.' || p || '_p' || suffix from unnest(array['audit_records', 'audit_decisions',
                'audit_verdicts']) p
      loop
        for i in select x.indexrelid::regclass from pg_index x join pg_class c on c.oid = x.indexrelid
                 join pg_am a on a.oid = c.relam where x.indrelid = to_regclass(t) and a.amname = 'brin'
        loop
          execute format('alter index %s set (autosummarize = on)', i);
        end loop;
        if to_regclass(t) is not null then
          execute format('create trigger %I before truncate on %s for each statement execute function '
            'optgate_refuse_change()', split_part(t, '.', 2) || '_no_truncate', t);
        end if;
      end loop;
      return true;
    end $$`.execute(db);
  await sql`select optgate_audit_partition(now() + (n || ' months')::interval) from generate_series(0, 2) n`.execute(
    db,
  );

  await sql`create function optgate_drop_audit_partition(period text) returns void language plpgsql
    security definer set search_path = pg_catalog, public as $$
    declare
      s audit_settings;
      a audit_archives;
      until date;
      suffix text := case when period = 'legacy' then 'legacy' else 'p' || replace(period, '-', '') end;
      first_seq bigint;
      last_seq bigint;
      t text;
    begin
      select * into s from audit_settings;
      select * into a from audit_archives where audit_archives.period = optgate_drop_audit_partition.period;
      if not found then
        raise exception 'audit partition %: no archive is registered', period using errcode = '42501';
      end if;
      until := case when period = 'legacy' then s.legacy_until else (period || '-01')::date + interval '1 month' end;
      if until is null
         or until > date_trunc('month', now() at time zone 'UTC') - make_interval(months => s.retention_months) then
        raise exception 'audit partition %: within the retention of % months', period, s.retention_months
          using errcode = '42501';
      end if;
      execute format('select min(seq), max(seq) from (select seq from public.%I union all select seq from public.%I '
        'union all select seq from public.%I) x', 'audit_records_' || suffix, 'audit_decisions_' || suffix,
        'audit_verdicts_' || suffix) into first_seq, last_seq;
      if first_seq is distinct from a.first_seq or last_seq is distinct from a.last_seq then
        raise exception 'audit partition %: holds records % … %, the archive % … %', period, first_seq, last_seq,
          a.first_seq, a.last_seq using errcode = '42501';
      end if;
      if a.rows > 0 and not exists (select 1 from audit_checkpoints c where c.seq >= a.last_seq
                                    and c.root_hash is not null) then
        raise exception 'audit partition %: no signed tree head covers it', period using errcode = '42501';
      end if;
      foreach t in array array['audit_verdicts', 'audit_decisions', 'audit_records'] loop
        execute format('alter table public.%I detach partition public.%I', t, t || '_' || suffix);
        execute format('drop table public.%I', t || '_' || suffix);
      end loop;
    end $$`.execute(db);

  // Statistics of the partitions, not of the (empty) parents.
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
                 and (s.relname = 'audit_tree_nodes' or s.relid in (select inhrelid from pg_inherits where inhparent
                      in ('audit_records'::regclass, 'audit_decisions'::regclass, 'audit_verdicts'::regclass)))
                 and s.n_mod_since_analyze > 1000
                 and s.n_mod_since_analyze > 0.2 * greatest(s.n_live_tup - s.n_mod_since_analyze, 0)
      loop
        execute format('analyze %s', t.rel);
      end loop;
      return n;
    end $$`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('0011 (audit partitions) cannot be undone: restore a backup taken before it');
}
