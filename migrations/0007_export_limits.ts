import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * Exports that cannot hurt the service: a completed export's file expires (`expires_at`; its
 * chunks are deleted and it becomes `expired`), and each client's queued and running exports are
 * counted through a small partial index.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_exports drop constraint audit_exports_status_check`.execute(db);
  await sql`alter table audit_exports add constraint audit_exports_status_check
    check (status in ('queued', 'running', 'completed', 'failed', 'expired'))`.execute(db);
  await sql`alter table audit_exports add column expires_at timestamptz`.execute(db);
  await sql`create index audit_exports_pending_idx on audit_exports (requested_by)
    where status in ('queued', 'running')`.execute(db);
  await sql`create index audit_exports_expiry_idx on audit_exports (expires_at)
    where status = 'completed'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index audit_exports_expiry_idx`.execute(db);
  await sql`drop index audit_exports_pending_idx`.execute(db);
  await sql`alter table audit_exports drop column expires_at`.execute(db);
  await sql`alter table audit_exports drop constraint audit_exports_status_check`.execute(db);
  await sql`alter table audit_exports add constraint audit_exports_status_check
    check (status in ('queued', 'running', 'completed', 'failed'))`.execute(db);
}
