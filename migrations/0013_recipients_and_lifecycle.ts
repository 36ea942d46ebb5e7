import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Opt-ins to sale, disclosure and access in place name their recipients (`recipients`, registry
 * ids, on the grant event and on the state it leaves). A grant ends with a `lapsed` event when its
 * account is closed, so that re-opening the account does not bring it back.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table consent_events add column recipients text[]`.execute(db);
  await sql`alter table consent_state add column recipients text[]`.execute(db);
  await sql`alter table consent_events drop constraint consent_events_kind_check`.execute(db);
  await sql`alter table consent_events add constraint consent_events_kind_check check (kind in
    ('granted', 'renewed', 'revoked', 'declined', 'expired', 'opted_out', 'opt_out_withdrawn', 'lapsed'))`.execute(db);
  await sql`alter table consent_state drop constraint consent_state_state_check`.execute(db);
  await sql`alter table consent_state add constraint consent_state_state_check check (state in
    ('granted', 'revoked', 'declined', 'expired', 'opted_out', 'not_opted_out', 'lapsed'))`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`delete from consent_state where state = 'lapsed'`.execute(db);
  await sql`alter table consent_state drop constraint consent_state_state_check`.execute(db);
  await sql`alter table consent_state add constraint consent_state_state_check check (state in
    ('granted', 'revoked', 'declined', 'expired', 'opted_out', 'not_opted_out'))`.execute(db);
  await sql`alter table consent_events drop constraint consent_events_kind_check`.execute(db);
  await sql`alter table consent_events add constraint consent_events_kind_check check (kind in
    ('granted', 'renewed', 'revoked', 'declined', 'expired', 'opted_out', 'opt_out_withdrawn'))`.execute(db);
  await sql`alter table consent_state drop column recipients`.execute(db);
  await sql`alter table consent_events drop column recipients`.execute(db);
}
