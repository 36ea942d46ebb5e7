import { sql } from 'kysely';
import type { Db } from '../platform/db/database';

/** Records, in the caller's transaction, that these accounts changed ('all': every account). */
export async function recordChanges(trx: Db, accounts: readonly string[] | 'all'): Promise<void> {
  if (accounts === 'all') {
    await sql`insert into account_changes (account_id) values (null)`.execute(trx);
  } else if (accounts.length) {
    await sql`insert into account_changes (account_id) select unnest(${accounts}::text[])`.execute(trx);
  }
}

export interface ChangesSince {
  /** The snapshot to pass next time. */
  readonly snapshot: string;
  /** Accounts whose changes committed after `since` and before `snapshot` (`all`: a change of every account). */
  readonly accounts: readonly string[];
  readonly all: boolean;
}

/**
 * The changes committed between two snapshots: rows visible now and not visible in `since`.
 * Transactions still running now are in neither, and come out next time. Without `since`, only
 * the current snapshot (the starting point).
 */
export async function changesSince(db: Db, since: string | undefined): Promise<ChangesSince> {
  if (since === undefined) {
    const { rows } = await sql<{ snapshot: string }>`select pg_current_snapshot()::text as snapshot`.execute(db);
    return { snapshot: rows[0]!.snapshot, accounts: [], all: false };
  }
  const { rows } = await sql<{ snapshot: string; accounts: (string | null)[] | null }>`
    select pg_current_snapshot()::text as snapshot,
      (select array_agg(distinct account_id) from account_changes
        where xid >= pg_snapshot_xmin(${since}::pg_snapshot) and not pg_visible_in_snapshot(xid, ${since}::pg_snapshot)
      ) as accounts`.execute(db);
  const changed = rows[0]!.accounts ?? [];
  return {
    snapshot: rows[0]!.snapshot,
    accounts: changed.filter((a): a is string => a !== null),
    all: changed.includes(null),
  };
}

/** Forgets changes older than `before`: a cache behind by more than that starts again, empty. */
export async function pruneChanges(db: Db, before: Date): Promise<number> {
  const r = await sql`delete from account_changes where changed_at < ${before}`.execute(db);
  return Number(r.numAffectedRows ?? 0);
}
