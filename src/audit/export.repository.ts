import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import type { AuditExportRow, ExportStatus } from './audit.table';
import type { ExportFilters, ExportFormat } from './formats';

/**
 * Inserts a queued export unless its client already has `maxPending` queued or running: false then.
 * Requests of one client are serialised (a transaction-scoped advisory lock on the client), so that
 * concurrent requests cannot all pass the count.
 */
export async function insertExportWithinLimit(
  db: Db,
  e: { id: string; requestedBy: string; filters: ExportFilters; format: ExportFormat; createdAt: Date },
  maxPending: number,
): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    await sql`select pg_advisory_xact_lock(hashtextextended(${`optgate:exports:${e.requestedBy}`}, 0))`.execute(tx);
    const { pending } = await tx
      .selectFrom('audit_exports')
      .select((eb) => eb.fn.countAll<string>().as('pending'))
      .where('requested_by', '=', e.requestedBy)
      .where('status', 'in', ['queued', 'running'])
      .executeTakeFirstOrThrow();
    if (Number(pending) >= maxPending) return false;
    await tx
      .insertInto('audit_exports')
      .values({
        id: e.id,
        requested_by: e.requestedBy,
        filters: JSON.stringify(e.filters),
        format: e.format,
        status: 'queued',
        created_at: e.createdAt,
      })
      .execute();
    return true;
  });
}

/** Completed exports whose time has come: their files are deleted and they become `expired`. Returns their ids. */
export async function expireExports(db: Db, now: Date): Promise<string[]> {
  return db.transaction().execute(async (tx) => {
    const expired = await tx
      .updateTable('audit_exports')
      .set({ status: 'expired' })
      .where('status', '=', 'completed')
      .where('expires_at', '<=', now)
      .returning('id')
      .execute();
    const ids = expired.map((r) => r.id);
    if (ids.length) await tx.deleteFrom('audit_export_chunks').where('export_id', 'in', ids).execute();
    return ids;
  });
}

export async function findExport(db: Db, id: string): Promise<AuditExportRow | undefined> {
  return db.selectFrom('audit_exports').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function updateExport(
  db: Db,
  id: string,
  set: Partial<{
    status: ExportStatus;
    progress: number;
    rows: number;
    bytes: number;
    sha256: string;
    first_seq: number | null;
    last_seq: number | null;
    manifest: string;
    error: string | null;
    completed_at: Date | null;
    expires_at: Date | null;
  }>,
) {
  await db.updateTable('audit_exports').set(set).where('id', '=', id).execute();
}

/** A rerun (a retried job) starts from nothing; a failed export keeps nothing. */
export async function deleteChunks(db: Db, exportId: string) {
  await db.deleteFrom('audit_export_chunks').where('export_id', '=', exportId).execute();
}

export async function insertChunk(db: Db, exportId: string, n: number, data: Buffer) {
  await db.insertInto('audit_export_chunks').values({ export_id: exportId, n, data }).execute();
}

/**
 * Pieces of a stored chunk, read back. A 1 MiB bytea arrives as 2 MiB of hex text, a string V8 keeps in its large
 * object space until a full collection: a download held some 250 MiB of them at once. Pieces of 32 KiB come as
 * strings of 64 KiB, which the young generation frees at once (a download's memory growth went from about 100 to 30
 * MiB in a test of the two).
 */
const PIECE_BYTES = 32 * 1024;

/** The chunk `n` of an export as pieces, in order; undefined past the last chunk. */
export async function findChunk(db: Db, exportId: string, n: number): Promise<Buffer[] | undefined> {
  const { rows } = await sql<{ piece: Buffer }>`
    select substring(c.data from g for ${sql.lit(PIECE_BYTES)}) as piece
    from audit_export_chunks c, generate_series(1, greatest(length(c.data), 1), ${sql.lit(PIECE_BYTES)}) g
    where c.export_id = ${exportId} and c.n = ${n}
    order by g`.execute(db);
  return rows.length ? rows.map((r) => r.piece) : undefined;
}

/** The latest exports, newest first. A sort of a small table (one row per export ever asked for, kept as a record). */
export async function findRecentExports(db: Db, limit: number): Promise<AuditExportRow[]> {
  return db.selectFrom('audit_exports').selectAll().orderBy('created_at', 'desc').orderBy('id').limit(limit).execute();
}
