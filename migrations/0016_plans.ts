import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Non-discrimination evidence: an account's plan and monthly price, and every change of either
 * (`account_plan_changes`, append-only), so that staff can review each one that follows a consent
 * choice.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table accounts add column plan text check (length(plan) between 1 and 64)`.execute(db);
  await sql`alter table accounts add column monthly_price numeric(12, 2) check (monthly_price >= 0)`.execute(db);
  await sql`create table account_plan_changes (
    id bigserial primary key,
    account_id text not null references accounts (account_id),
    changed_at timestamptz not null,
    plan text,
    monthly_price numeric(12, 2),
    previous_plan text,
    previous_monthly_price numeric(12, 2)
  )`.execute(db);
  await sql`create index account_plan_changes_time_idx on account_plan_changes (changed_at, id)`.execute(db);
  await sql`create trigger account_plan_changes_append_only before update or delete on account_plan_changes
    for each row execute function optgate_refuse_change()`.execute(db);
  await sql`create trigger account_plan_changes_no_truncate before truncate on account_plan_changes
    for each statement execute function optgate_refuse_change()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table account_plan_changes`.execute(db);
  await sql`alter table accounts drop column monthly_price`.execute(db);
  await sql`alter table accounts drop column plan`.execute(db);
}
