import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Signed webhooks (issue 12). `webhook_endpoints`: a client's receivers (the client is the token's `sub`); a
 * deleted endpoint keeps its row (`deleted_at`) so that its deliveries stay listed. `webhook_deliveries`: one row per
 * event and endpoint, its `seq` the order in which an endpoint gets them. `webhook_cursor`: how far the dispatcher has
 * read the change feed (one row, moved in the transaction that creates the deliveries). `webhook_expiring`: the
 * consents whose coming expiry was announced.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table webhook_endpoints (
      id uuid primary key,
      client_id text not null,
      url text not null check (url ~ '^https?://'),
      events text[] not null check (cardinality(events) > 0),
      description text not null default '' check (char_length(description) <= 500),
      secret text not null check (secret ~ '^whsec_'),
      created_at timestamptz not null,
      deleted_at timestamptz
    )`.execute(db);
  await sql`create index webhook_endpoints_client_idx on webhook_endpoints (client_id, created_at)`.execute(db);
  await sql`
    create table webhook_deliveries (
      seq bigint generated always as identity primary key,
      id uuid not null unique,
      endpoint_id uuid not null references webhook_endpoints (id),
      event text not null,
      feed_seq bigint,
      payload jsonb not null,
      status text not null default 'pending' check (status in ('pending', 'delivered', 'dead')),
      attempts integer not null default 0,
      last_status integer,
      last_error text,
      next_attempt_at timestamptz not null,
      locked_until timestamptz,
      created_at timestamptz not null,
      completed_at timestamptz,
      unique (endpoint_id, event, feed_seq)
    )`.execute(db);
  await sql`create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id, seq)`.execute(db);
  await sql`create index webhook_deliveries_pending_idx on webhook_deliveries (endpoint_id, seq)
    where status = 'pending'`.execute(db);
  await sql`
    create table webhook_cursor (
      id integer primary key check (id = 1),
      feed_seq bigint not null
    )`.execute(db);
  // From now on: a receiver registered on a database with years of history gets new events, not the history.
  await sql`insert into webhook_cursor (id, feed_seq) select 1, coalesce(max(seq), 0) from audit_records`.execute(db);
  // The consents whose coming expiry was announced (consent.expiring): once per consent.
  await sql`
    create table webhook_expiring (
      consent_id uuid primary key,
      announced_at timestamptz not null
    )`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table webhook_expiring`.execute(db);
  await sql`drop table webhook_cursor`.execute(db);
  await sql`drop table webhook_deliveries`.execute(db);
  await sql`drop table webhook_endpoints`.execute(db);
}
