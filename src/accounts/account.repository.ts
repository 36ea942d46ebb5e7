import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import type { AccountStatus } from '../platform/vocabulary';

export interface AccountInput {
  readonly accountId: string;
  readonly status: AccountStatus;
  readonly serviceState: string | null;
  readonly billingState: string | null;
}

/** An account an import created or changed, and its status before (null: it is new). */
export interface AccountChange extends AccountInput {
  readonly previousStatus: AccountStatus | null;
}

/**
 * Upserts in one statement, whatever the size: unnest keeps it to four parameters. Returns the
 * accounts that were new or actually changed, with their status before. The rows are locked first
 * (in id order, so that two imports cannot deadlock), so that the status before is the one replaced.
 */
export async function upsertRows(db: Db, accounts: readonly AccountInput[]): Promise<AccountChange[]> {
  if (accounts.length === 0) return [];
  const ids = accounts.map((a) => a.accountId);
  const { rows: locked } = await sql<{ account_id: string; status: AccountStatus }>`
    select account_id, status from accounts where account_id = any(${ids}::text[])
    order by account_id for update`.execute(db);
  const before = new Map(locked.map((r) => [r.account_id, r.status] as const));
  const { rows } = await sql<{
    account_id: string;
    status: AccountStatus;
    service_state: string | null;
    billing_state: string | null;
  }>`
    insert into accounts (account_id, status, service_state, billing_state, closed_at)
    select a.*, case when a.status = 'closed' then now() end from unnest(
      ${ids}::text[],
      ${accounts.map((a) => a.status)}::text[],
      ${accounts.map((a) => a.serviceState)}::text[],
      ${accounts.map((a) => a.billingState)}::text[]) a(account_id, status, service_state, billing_state)
    on conflict (account_id) do update set
      status = excluded.status,
      service_state = excluded.service_state,
      billing_state = excluded.billing_state,
      updated_at = now(),
      closed_at = case when excluded.status <> 'closed' then null else coalesce(accounts.closed_at, now()) end
    where (accounts.status, accounts.service_state, accounts.billing_state)
      is distinct from (excluded.status, excluded.service_state, excluded.billing_state)
    returning account_id, status, service_state, billing_state`.execute(db);
  return rows.map((r) => ({
    accountId: r.account_id,
    status: r.status,
    serviceState: r.service_state,
    billingState: r.billing_state,
    previousStatus: before.get(r.account_id) ?? null,
  }));
}

export async function findAccount(db: Db, accountId: string) {
  return db
    .selectFrom('accounts')
    .select(['account_id', 'status', 'service_state', 'billing_state', 'created_at', 'updated_at'])
    .where('account_id', '=', accountId)
    .executeTakeFirst();
}

/** Locks the account row against concurrent status changes while consents are recorded for it. */
export async function lockAccount(db: Db, accountId: string) {
  return db
    .selectFrom('accounts')
    .select(['account_id', 'status'])
    .where('account_id', '=', accountId)
    .forShare()
    .executeTakeFirst();
}
