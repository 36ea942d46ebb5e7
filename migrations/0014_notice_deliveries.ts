import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Which notice version was given to which subscriber, how, by whom and when: the proof that a store or a call centre
 * showed the notice before asking. Append-only, like the consent history (the runtime role may only select and
 * insert; the triggers refuse even the owner's updates and deletes). `seq` orders an account's list, newest first.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table notice_deliveries (
      seq bigint generated always as identity primary key,
      delivery_id uuid not null unique,
      account_id text not null references accounts (account_id),
      notice_version text not null,
      notice_sha256 text not null check (notice_sha256 ~ '^[0-9a-f]{64}$'),
      channel text not null check (channel in ('point_of_sale', 'call_center', 'mail', 'email', 'api')),
      staff_id text check (char_length(staff_id) between 1 and 128),
      client_id text not null,
      delivered_at timestamptz not null,
      recorded_at timestamptz not null,
      request_id text,
      constraint notice_deliveries_staff_check
        check (staff_id is not null or channel not in ('point_of_sale', 'call_center')),
      constraint notice_deliveries_time_check check (delivered_at <= recorded_at)
    )`.execute(db);
  await sql`create index notice_deliveries_account_idx on notice_deliveries (account_id, seq)`.execute(db);
  await sql`create trigger notice_deliveries_append_only before update or delete on notice_deliveries
    for each row execute function optgate_refuse_change()`.execute(db);
  await sql`create trigger notice_deliveries_no_truncate before truncate on notice_deliveries
    for each statement execute function optgate_refuse_change()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table notice_deliveries`.execute(db);
}
