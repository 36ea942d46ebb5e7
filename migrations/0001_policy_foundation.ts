import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('account_id', 'text', (c) => c.primaryKey().check(sql`account_id ~ '^[A-Za-z0-9._-]{1,64}$'`))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'closed')`))
    .addColumn('service_state', 'text')
    .addColumn('billing_state', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // Append-only history of every consent change. `id` orders the change feed.
  await db.schema
    .createTable('consent_events')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('event_id', 'uuid', (c) => c.notNull().unique())
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.account_id'))
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('category', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) =>
      c.notNull().check(sql`kind in ('granted', 'renewed', 'revoked', 'declined', 'expired', 'opted_out', 'opt_out_withdrawn')`),
    )
    .addColumn('actor_type', 'text', (c) => c.notNull().check(sql`actor_type in ('subscriber', 'staff', 'system')`))
    .addColumn('actor_id', 'text')
    .addColumn('channel', 'text', (c) => c.notNull().check(sql`channel in ('portal', 'api', 'call_center', 'point_of_sale', 'system')`))
    .addColumn('client_id', 'text')
    .addColumn('notice_version', 'text', (c) => c.notNull())
    .addColumn('notice_sha256', 'text', (c) => c.notNull())
    .addColumn('occurred_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz')
    .addColumn('request_id', 'text')
    .addColumn('ip_hash', 'text')
    .addColumn('user_agent_hash', 'text')
    .execute();
  await db.schema.createIndex('consent_events_account_idx').on('consent_events').columns(['account_id', 'id']).execute();

  await sql`
    create function optgate_refuse_change() returns trigger language plpgsql as $$
    begin
      raise exception '% is append-only: % refused', tg_table_name, tg_op using errcode = 'insufficient_privilege';
    end $$`.execute(db);
  await sql`
    create trigger consent_events_append_only before update or delete on consent_events
    for each row execute function optgate_refuse_change()`.execute(db);
  await sql`
    create trigger consent_events_no_truncate before truncate on consent_events
    for each statement execute function optgate_refuse_change()`.execute(db);

  // Current state per account × purpose × category, derived from the events in the same transaction.
  await db.schema
    .createTable('consent_state')
    .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.account_id'))
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('category', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) =>
      c.notNull().check(sql`state in ('granted', 'revoked', 'declined', 'expired', 'opted_out', 'not_opted_out')`),
    )
    .addColumn('consent_id', 'uuid', (c) => c.notNull())
    .addColumn('notice_version', 'text', (c) => c.notNull())
    .addColumn('granted_at', 'timestamptz')
    .addColumn('expires_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_event_id', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('consent_state_pk', ['account_id', 'purpose', 'category'])
    .execute();
  // The expiry sweep looks for grants whose term has run out.
  await sql`create index consent_state_granted_expiry_idx on consent_state (expires_at) where state = 'granted'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('consent_state').execute();
  await db.schema.dropTable('consent_events').execute();
  await sql`drop function optgate_refuse_change()`.execute(db);
  await db.schema.dropTable('accounts').execute();
}
