import type { Db } from '../platform/db/database';
import type { AuditExportRow, ExportStatus } from './audit.table';
import type { ExportFilters, ExportFormat } from './formats';

export async function insertExport(
  db: Db,
  e: { id: string; requestedBy: string; filters: ExportFilters; format: ExportFormat; createdAt: Date },
) {
  await db
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
  }>,
) {
  await db.updateTable('audit_exports').set(set).where('id', '=', id).execute();
}

/** A rerun (a retried job) starts from nothing. */
export async function deleteChunks(db: Db, exportId: string) {
  await db.deleteFrom('audit_export_chunks').where('export_id', '=', exportId).execute();
}

export async function insertChunk(db: Db, exportId: string, n: number, data: Buffer) {
  await db.insertInto('audit_export_chunks').values({ export_id: exportId, n, data }).execute();
}

export async function findChunk(db: Db, exportId: string, n: number): Promise<Buffer | undefined> {
  const row = await db
    .selectFrom('audit_export_chunks')
    .select('data')
    .where('export_id', '=', exportId)
    .where('n', '=', n)
    .executeTakeFirst();
  return row?.data;
}
