import { createHash, randomUUID } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import type { Job } from 'bullmq';
import type { ServiceKeys } from '../platform/auth/keys';
import { signJws } from '../platform/auth/signing';
import type { Db } from '../platform/db/database';
import { AppError } from '../platform/errors';
import type { Queues } from '../platform/queues';
import { withTimeout } from '../platform/timeout';
import type { StaffRole } from '../platform/vocabulary';
import * as records from './audit.repository';
import type { AuditService } from './audit.service';
import type { AuditExportRow } from './audit.table';
import type { ChainedRecord } from './chain';
import * as repo from './export.repository';
import {
  CSV_HEADER,
  csvRows,
  type ExportFilters,
  type ExportFormat,
  MANIFEST_TYP,
  type ManifestPayload,
  ndjsonLine,
} from './formats';
import { readRecords } from './record-reader';

const PAGE_ROWS = 5000;
const QUEUE_TIMEOUT_MS = 2000;
const CHUNK_BYTES = 1 << 20;

/**
 * Audit exports run as BullMQ jobs (payload: the export id only). Rows stream from PostgreSQL
 * by keyset pages into 1 MiB chunks stored in PostgreSQL, so memory stays bounded whatever the
 * size, and any instance can serve the download. Done, the export gets a signed manifest; its file
 * is deleted once it expires. A client has a bounded number of exports queued or running.
 */
export interface ExportDeps {
  readonly db: Db;
  readonly queues: Queues;
  readonly audit: AuditService;
  readonly keys: ServiceKeys;
  readonly clock: () => Date;
  /**
   * Queued and running exports a client may have at once; how long a finished file is kept; the
   * share of its time an export works (writeRecords' `pace`).
   */
  readonly limits: { readonly maxPendingPerClient: number; readonly retentionMs: number; readonly pace: number };
}

export class ExportService {
  private readonly db: Db;

  constructor(private readonly deps: ExportDeps) {
    this.db = deps.db;
  }

  /**
   * Queues an export. `staff`: started from the compliance console, by a member of staff in this role (and, for
   * support, the ticket): the `export_requested` record says so.
   */
  async request(
    requestedBy: string,
    filters: ExportFilters,
    format: ExportFormat,
    staff?: { readonly role: StaffRole; readonly reference?: string },
  ): Promise<string> {
    const id = randomUUID();
    const { maxPendingPerClient } = this.deps.limits;
    const export_ = { id, requestedBy, filters, format, createdAt: this.deps.clock() };
    if (!(await repo.insertExportWithinLimit(this.db, export_, maxPendingPerClient))) {
      throw new AppError(
        'too-many-requests',
        `This client already has ${maxPendingPerClient} exports queued or running: wait for one to finish.`,
        undefined,
        { 'retry-after': '30' },
      );
    }
    await this.deps.audit.recordStaffAction(
      {
        action: 'export_requested',
        actor: requestedBy,
        exportId: id,
        format,
        filters,
        ...(staff ? { role: staff.role } : {}),
        ...(staff?.reference ? { reference: staff.reference } : {}),
      },
      filters.accountId ?? null,
    );
    // The queue connection waits for Redis forever; a caller must not. An export that cannot be queued is
    // failed, not left 'queued'.
    const queued = this.deps.queues.queue('audit-export').add('export', { exportId: id }, { jobId: `export-${id}` });
    try {
      await withTimeout(queued, QUEUE_TIMEOUT_MS, () => new Error('queue unavailable'));
    } catch {
      await repo.updateExport(this.db, id, {
        status: 'failed',
        error: 'The export could not be queued (Redis unavailable).',
      });
      throw new AppError('unavailable', 'Exports cannot be started right now. Try again shortly.', undefined, {
        'retry-after': '5',
      });
    }
    return id;
  }

  async status(id: string) {
    return statusOf(await this.find(id));
  }

  /** The latest exports, newest first (every client's and every staff member's): at most `limit`. */
  async recent(limit: number) {
    return (await repo.findRecentExports(this.db, limit)).map((e) => ({ ...statusOf(e), requestedBy: e.requested_by }));
  }

  /** The signed manifest outlives the file: it stays the record of what was exported. */
  async manifest(id: string): Promise<string> {
    const e = await this.find(id);
    if (!e.manifest) throw new AppError('conflict', `The export is ${e.status}, not completed.`);
    return e.manifest;
  }

  /** The file in order, a chunk fetched at a time (in pieces: see findChunk). */
  async *download(id: string): AsyncGenerator<Buffer> {
    await this.completed(id);
    for (let n = 0; ; n++) {
      const pieces = await repo.findChunk(this.db, id, n);
      if (!pieces) return;
      yield* pieces;
    }
  }

  async fileInfo(id: string) {
    const e = await this.completed(id);
    return { format: e.format, bytes: Number(e.bytes), sha256: e.sha256! };
  }

  /** The job. Idempotent: a retry starts the file again. */
  async run(job: Pick<Job, 'updateProgress'>, id: string): Promise<{ rows: number }> {
    const e = await this.find(id);
    if (e.status === 'completed') return { rows: Number(e.rows) };
    await repo.deleteChunks(this.db, id);
    await repo.updateExport(this.db, id, { status: 'running', progress: 0, rows: 0, bytes: 0, error: null });
    try {
      return await this.write(job, e);
    } catch (err) {
      await repo.deleteChunks(this.db, id);
      await repo.updateExport(this.db, id, { status: 'failed', error: (err as Error).message.slice(0, 500) });
      throw err;
    }
  }

  async exists(id: string): Promise<boolean> {
    return (await repo.findExport(this.db, id)) !== undefined;
  }

  /** Deletes the files of exports past their expiry (the job); returns how many. */
  async expire(): Promise<number> {
    return (await repo.expireExports(this.db, this.deps.clock())).length;
  }

  private async write(job: Pick<Job, 'updateProgress'>, e: AuditExportRow): Promise<{ rows: number }> {
    const filters = e.filters;
    // The export covers the chain as it stood when the job started; later records are not chased.
    const throughSeq = (await records.readHead(this.db)).seq;
    await records.summarizeIndexes(this.db);
    const total = await records.countRecords(this.db, { ...filters, throughSeq });
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let chunkNo = 0;
    const flushChunk = async () => {
      if (!pendingBytes) return;
      await repo.insertChunk(this.db, e.id, chunkNo++, Buffer.concat(pending));
      pending = [];
      pendingBytes = 0;
    };
    const file = await writeRecords(this.db, {
      filters,
      throughSeq,
      format: e.format,
      pace: this.deps.limits.pace,
      async write(buf) {
        pending.push(buf);
        pendingBytes += buf.length;
        if (pendingBytes >= CHUNK_BYTES) await flushChunk();
      },
      onPage: async ({ rows, bytes }) => {
        const progress = total ? Math.min(99, Math.floor((rows / total) * 100)) : 99;
        await repo.updateExport(this.db, e.id, { progress, rows, bytes });
        await job.updateProgress(progress);
      },
    });
    await flushChunk();
    const { rows, bytes, sha256, first, last } = file;
    const completedAt = this.deps.clock();
    const manifest = await signManifest(this.db, this.deps.keys, {
      id: e.id,
      createdAt: e.created_at,
      completedAt,
      format: e.format,
      filters,
      file,
    });
    await repo.updateExport(this.db, e.id, {
      status: 'completed',
      progress: 100,
      rows,
      bytes,
      sha256,
      first_seq: first?.seq ?? null,
      last_seq: last?.seq ?? null,
      manifest,
      completed_at: completedAt,
      expires_at: new Date(completedAt.getTime() + this.deps.limits.retentionMs),
    });
    await job.updateProgress(100);
    return { rows };
  }

  private async find(id: string): Promise<AuditExportRow> {
    const e = await repo.findExport(this.db, id);
    if (!e) throw new AppError('not-found', 'No such export.');
    return e;
  }

  private async completed(id: string): Promise<AuditExportRow> {
    const e = await this.find(id);
    if (e.status === 'expired') throw new AppError('gone', 'The export has expired and its file was deleted.');
    if (e.status !== 'completed') throw new AppError('conflict', `The export is ${e.status}, not completed.`);
    return e;
  }
}

/** An export as its status document says it. */
function statusOf(e: AuditExportRow) {
  return {
    exportId: e.id,
    status: e.status,
    progress: e.progress,
    rows: Number(e.rows),
    bytes: Number(e.bytes),
    format: e.format,
    filters: e.filters,
    createdAt: e.created_at,
    ...(e.completed_at ? { completedAt: e.completed_at } : {}),
    ...(e.expires_at ? { expiresAt: e.expires_at } : {}),
    ...(e.sha256 ? { sha256: e.sha256 } : {}),
    ...(e.error ? { error: e.error } : {}),
  };
}

/** What a file of records is: its size, hash, and the ends of the chain it holds. */
export interface RecordsFile {
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
  readonly first: ManifestPayload['first'];
  readonly last: ManifestPayload['last'];
}

/**
 * Streams the records `filters` select, up to `throughSeq`, as an export file (an export's chunks,
 * an archive's file): keyset pages of 5,000, each written before the next is read.
 */
export async function writeRecords(
  db: Db,
  o: {
    readonly filters: ExportFilters;
    readonly throughSeq: number;
    readonly format: ExportFormat;
    readonly write: (buf: Buffer) => Promise<void>;
    readonly onPage?: (sofar: { rows: number; bytes: number }) => Promise<void>;
    /** Writes a page's lines in place of the format's own (an archive pseudonymises some). */
    readonly encode?: (page: readonly ChainedRecord[]) => Promise<string>;
    /**
     * The share of the time spent reading and writing (0–1; 1: no pause): after each page, a pause so
     * that the file's work (here and in PostgreSQL) leaves the rest to the decisions served meanwhile.
     */
    readonly pace?: number;
  },
): Promise<RecordsFile> {
  const hash = createHash('sha256');
  let bytes = 0;
  let rows = 0;
  let first: ManifestPayload['first'] = null;
  let last: ManifestPayload['last'] = null;
  const emit = async (text: string) => {
    const buf = Buffer.from(text);
    hash.update(buf);
    bytes += buf.length;
    await o.write(buf);
  };
  if (o.format === 'csv') await emit(CSV_HEADER);
  let afterSeq: number | undefined;
  const pace = o.pace ?? 1;
  for (;;) {
    const started = performance.now();
    const page = await readRecords(db, { ...o.filters, afterSeq, throughSeq: o.throughSeq, limit: PAGE_ROWS });
    if (!page.length) break;
    await emit(o.encode ? await o.encode(page) : o.format === 'csv' ? csvRows(page) : page.map(ndjsonLine).join(''));
    first ??= { seq: page[0]!.seq, prevHash: page[0]!.prevHash };
    const tail = page[page.length - 1]!;
    last = { seq: tail.seq, hash: tail.hash };
    afterSeq = last.seq;
    rows += page.length;
    await o.onPage?.({ rows, bytes });
    if (page.length < PAGE_ROWS) break;
    if (pace < 1) await setTimeout(((performance.now() - started) * (1 - pace)) / pace);
  }
  return { rows, bytes, sha256: hash.digest('hex'), first, last };
}

/** The signed manifest of a file of records, with the latest checkpoint at or below its last record. */
export async function signManifest(
  db: Db,
  keys: ServiceKeys,
  o: {
    readonly id: string;
    readonly createdAt: Date;
    readonly completedAt: Date;
    readonly format: ExportFormat;
    readonly filters: ExportFilters;
    readonly file: RecordsFile;
  },
): Promise<string> {
  const { filters, file } = o;
  const checkpoint = file.last ? await records.latestCheckpoint(db, file.last.seq) : undefined;
  const manifest: ManifestPayload = {
    iss: 'optgate',
    exportId: o.id,
    createdAt: o.createdAt.toISOString(),
    completedAt: o.completedAt.toISOString(),
    format: o.format,
    filters,
    contiguous: !filters.accountId && !filters.types?.length && !filters.outcome && !filters.purpose,
    rows: file.rows,
    bytes: file.bytes,
    sha256: file.sha256,
    first: file.first,
    last: file.last,
    checkpoint: checkpoint?.jws ?? null,
  };
  return signJws(keys, manifest, MANIFEST_TYP);
}
