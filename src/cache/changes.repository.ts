import { sql } from 'kysely';
import type { Db } from '../platform/db/database';

/** A change about to commit: its accounts, and its transaction (which the catch-up will name too). */
export interface RecordedChange {
  readonly accounts: readonly string[] | 'all';
  readonly xid: string | undefined;
}

/** Records, in the caller's transaction, that these accounts changed ('all': every account). */
export async function recordChanges(trx: Db, accounts: readonly string[] | 'all'): Promise<RecordedChange> {
  if (accounts !== 'all' && accounts.length === 0) return { accounts, xid: undefined };
  const { rows } =
    accounts === 'all'
      ? await sql<{ xid: string }>`insert into account_changes (account_id) values (null) returning xid::text`.execute(
          trx,
        )
      : await sql<{ xid: string }>`
          insert into account_changes (account_id) select unnest(${accounts}::text[]) returning xid::text`.execute(trx);
  return { accounts, xid: rows[0]?.xid };
}

export interface ChangesSince {
  /** The snapshot to pass next time. */
  readonly snapshot: string;
  /** The transactions that committed after `since` and before `snapshot`, with their accounts (null: every account). */
  readonly changes: readonly { readonly xid: string; readonly accounts: readonly (string | null)[] }[];
}

/**
 * The changes committed between two snapshots: rows visible now and not visible in `since`.
 * Transactions still running now are in neither, and come out next time. Without `since`, only
 * the current snapshot (the starting point).
 */
export async function changesSince(db: Db, since: string | undefined): Promise<ChangesSince> {
  if (since === undefined) {
    const { rows } = await sql<{ snapshot: string }>`select pg_current_snapshot()::text as snapshot`.execute(db);
    return { snapshot: rows[0]!.snapshot, changes: [] };
  }
  const { rows } = await sql<{ snapshot: string; changes: { xid: string; accounts: (string | null)[] }[] | null }>`
    select pg_current_snapshot()::text as snapshot,
      (select json_agg(json_build_object('xid', xid::text, 'accounts', accounts)) from (
        select xid, array_agg(distinct account_id) as accounts from account_changes
        where xid >= pg_snapshot_xmin(${since}::pg_snapshot) and not pg_visible_in_snapshot(xid, ${since}::pg_snapshot)
        group by xid) t
      ) as changes`.execute(db);
  return { snapshot: rows[0]!.snapshot, changes: rows[0]!.changes ?? [] };
}

/** Forgets changes older than `before`: a cache behind by more than that starts again, empty. */
export async function pruneChanges(db: Db, before: Date): Promise<number> {
  const r = await sql`delete from account_changes where changed_at < ${before}`.execute(db);
  return Number(r.numAffectedRows ?? 0);
}
