import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import type { AccountStatus } from '../platform/vocabulary';

export interface AccountInput {
  readonly accountId: string;
  readonly status: AccountStatus;
  readonly serviceState: string | null;
  readonly billingState: string | null;
  readonly plan: string | null;
  /** Two decimals, as a string (numeric in PostgreSQL): "49.99". */
  readonly monthlyPrice: string | null;
}

/** An account an import created or changed, and what it was before (null: it is new). */
export interface AccountChange extends AccountInput {
  readonly before: {
    readonly status: AccountStatus;
    readonly plan: string | null;
    readonly monthlyPrice: string | null;
  } | null;
}

interface Row {
  account_id: string;
  status: AccountStatus;
  service_state: string | null;
  billing_state: string | null;
  plan: string | null;
  monthly_price: string | null;
}

/**
 * Upserts in one statement, whatever the size: unnest keeps it to six parameters. Returns the
 * accounts that were new or actually changed, with what they were before. The rows are locked first
 * (in id order, so that two imports cannot deadlock), so that what was before is what is replaced.
 * A change of plan or price is also appended to `account_plan_changes`.
 */
export async function upsertRows(db: Db, accounts: readonly AccountInput[], now: Date): Promise<AccountChange[]> {
  if (accounts.length === 0) return [];
  const ids = accounts.map((a) => a.accountId);
  const { rows: locked } = await sql<Pick<Row, 'account_id' | 'status' | 'plan' | 'monthly_price'>>`
    select account_id, status, plan, monthly_price from accounts where account_id = any(${ids}::text[])
    order by account_id for update`.execute(db);
  const before = new Map(
    locked.map((r) => [r.account_id, { status: r.status, plan: r.plan, monthlyPrice: r.monthly_price }] as const),
  );
  const { rows } = await sql<Row>`
    insert into accounts (account_id, status, service_state, billing_state, plan, monthly_price, closed_at)
    select a.*, case when a.status = 'closed' then now() end from unnest(
      ${ids}::text[],
      ${accounts.map((a) => a.status)}::text[],
      ${accounts.map((a) => a.serviceState)}::text[],
      ${accounts.map((a) => a.billingState)}::text[],
      ${accounts.map((a) => a.plan)}::text[],
      ${accounts.map((a) => a.monthlyPrice)}::numeric[])
      a(account_id, status, service_state, billing_state, plan, monthly_price)
    on conflict (account_id) do update set
      status = excluded.status,
      service_state = excluded.service_state,
      billing_state = excluded.billing_state,
      plan = excluded.plan,
      monthly_price = excluded.monthly_price,
      updated_at = now(),
      closed_at = case when excluded.status <> 'closed' then null else coalesce(accounts.closed_at, now()) end
    where (accounts.status, accounts.service_state, accounts.billing_state, accounts.plan, accounts.monthly_price)
      is distinct from
      (excluded.status, excluded.service_state, excluded.billing_state, excluded.plan, excluded.monthly_price)
    returning account_id, status, service_state, billing_state, plan, monthly_price`.execute(db);
  const changes = rows.map(
    (r): AccountChange => ({
      accountId: r.account_id,
      status: r.status,
      serviceState: r.service_state,
      billingState: r.billing_state,
      plan: r.plan,
      monthlyPrice: r.monthly_price,
      before: before.get(r.account_id) ?? null,
    }),
  );
  const samePrice = (a: string | null, b: string | null) =>
    a === b || (a !== null && b !== null && Number(a) === Number(b));
  const priced = changes.filter(
    (c) => c.before && (c.before.plan !== c.plan || !samePrice(c.before.monthlyPrice, c.monthlyPrice)),
  );
  if (priced.length) {
    await db
      .insertInto('account_plan_changes')
      .values(
        priced.map((c) => ({
          account_id: c.accountId,
          changed_at: now,
          plan: c.plan,
          monthly_price: c.monthlyPrice,
          previous_plan: c.before!.plan,
          previous_monthly_price: c.before!.monthlyPrice,
        })),
      )
      .execute();
  }
  return changes;
}

/** Changes of plan or price in [from, to), in the order they were recorded, after the change `afterId`. */
export async function findPlanChanges(db: Db, o: { from: Date; to: Date; afterId?: string; limit: number }) {
  let q = db
    .selectFrom('account_plan_changes')
    .selectAll()
    .where('changed_at', '>=', o.from)
    .where('changed_at', '<', o.to)
    .orderBy('id')
    .limit(o.limit);
  if (o.afterId) q = q.where('id', '>', o.afterId);
  return q.execute();
}

export async function findAccount(db: Db, accountId: string) {
  return db
    .selectFrom('accounts')
    .select(['account_id', 'status', 'service_state', 'billing_state', 'created_at', 'updated_at', 'gpc_at'])
    .where('account_id', '=', accountId)
    .executeTakeFirst();
}

/** Sets since when the account's subscriber sends Global Privacy Control, once: false when it was set before. */
export async function claimGpc(db: Db, accountId: string, now: Date): Promise<boolean> {
  const r = await db
    .updateTable('accounts')
    .set({ gpc_at: now })
    .where('account_id', '=', accountId)
    .where('gpc_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
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
