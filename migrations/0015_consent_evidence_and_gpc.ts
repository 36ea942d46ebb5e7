import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Capture evidence: a change recorded by staff on the subscriber's word keeps how staff verified
 * who they were speaking to (`verification`) and the call or ticket it was made in (`reference`).
 *
 * Global Privacy Control as a standing signal: the account remembers since when its subscriber's
 * browser sends it (`accounts.gpc_at`, set once, when the signal was first honoured), and a grant
 * the subscriber made while the signal was present says so (`consent_events.under_gpc`).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table consent_events add column verification text check (verification in
    ('account_pin', 'security_questions', 'in_person_id', 'callback', 'signed_form'))`.execute(db);
  await sql`alter table consent_events add column reference text check (length(reference) between 1 and 128)`.execute(
    db,
  );
  await sql`alter table consent_events add column under_gpc boolean not null default false`.execute(db);
  await sql`alter table accounts add column gpc_at timestamptz`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table accounts drop column gpc_at`.execute(db);
  await sql`alter table consent_events drop column under_gpc`.execute(db);
  await sql`alter table consent_events drop column reference`.execute(db);
  await sql`alter table consent_events drop column verification`.execute(db);
}
