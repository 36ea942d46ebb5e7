import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type SelectQueryBuilder, sql } from 'kysely';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Database, Db } from '../platform/db/database';
import type { AuditCheckpointRow, AuditRecordRow, ExportFilters } from './audit.table';
import { type ChainedRecord, type ChainHead, type PreparedDraft, seal } from './chain';

/** Locks the chain head until the caller's transaction ends: every append on every instance queues here. */
export async function lockHead(trx: Db): Promise<ChainHead & { recordedAt: Date }> {
  const row = await trx
    .selectFrom('audit_head')
    .select(['seq', 'hash', 'recorded_at'])
    .where('id', '=', 1)
    .forUpdate()
    .executeTakeFirstOrThrow();
  return { seq: Number(row.seq), hash: row.hash, recordedAt: row.recorded_at };
}

export async function readHead(db: Db): Promise<ChainHead> {
  const row = await db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  return { seq: Number(row.seq), hash: row.hash };
}

/**
 * One statement and one parameter for any number of records: a JSON array of rows. (pg's
 * encoding of text arrays escapes every string in JavaScript; JSON.stringify is several times
 * faster, and this runs while the chain head is locked.)
 */
export async function insertRecords(trx: Db, records: readonly ChainedRecord[]): Promise<void> {
  if (records.length === 0) return;
  const rows = JSON.stringify(
    records.map((r) => [r.seq, r.recordedAt, r.type, r.accountId, r.outcome, r.content, r.prevHash, r.hash]),
  );
  await sql`
    insert into audit_records (seq, recorded_at, type, account_id, outcome, content, prev_hash, hash)
    select (r->>0)::bigint, (r->>1)::timestamptz, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7
    from json_array_elements(${rows}::json) as r`.execute(trx);
  const last = records[records.length - 1]!;
  await trx
    .updateTable('audit_head')
    .set({ seq: last.seq, hash: last.hash, recorded_at: last.recordedAt })
    .where('id', '=', 1)
    .execute();
}

/**
 * The group-commit path: one transaction on a pool client, the records streamed with COPY (five
 * times faster than an INSERT of the same rows, and this runs while the chain head is locked).
 * pg, not kysely: kysely has no COPY.
 */
export async function appendByCopy(
  pool: pg.Pool,
  drafts: readonly PreparedDraft[],
  now: Date,
): Promise<ChainedRecord[]> {
  const client = await pool.connect();
  let failed: Error | undefined;
  try {
    await client.query('begin');
    const { rows } = await client.query<{ seq: string; hash: string; recorded_at: Date }>(
      'select seq, hash, recorded_at from audit_head where id = 1 for update',
    );
    const head = rows[0]!;
    const recordedAt = now.getTime() > head.recorded_at.getTime() ? now : head.recorded_at;
    const records = seal(drafts, { seq: Number(head.seq), hash: head.hash }, recordedAt);
    const at = recordedAt.toISOString();
    let tsv = '';
    for (const r of records) {
      tsv += `${r.seq}\t${at}\t${r.type}\t${r.accountId === null ? '\\N' : copyText(r.accountId)}\t${r.outcome ?? '\\N'}\t${copyText(r.content)}\t${r.prevHash}\t${r.hash}\n`;
    }
    await pipeline(
      Readable.from([tsv]),
      client.query(
        copyFrom(
          'copy audit_records (seq, recorded_at, type, account_id, outcome, content, prev_hash, hash) from stdin',
        ),
      ),
    );
    const last = records[records.length - 1]!;
    await client.query('update audit_head set seq = $1, hash = $2, recorded_at = $3 where id = 1', [
      last.seq,
      last.hash,
      recordedAt,
    ]);
    await client.query('commit');
    return records;
  } catch (err) {
    failed = err as Error;
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    // A client that failed mid-COPY may be out of step with the server: it is discarded, not reused.
    client.release(failed);
  }
}

/** COPY's text format: backslash, tab, newline and carriage return are escaped. */
const copyText = (s: string) =>
  /[\\\t\n\r]/.test(s)
    ? s.replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c]!)
    : s;

export interface RecordQuery extends ExportFilters {
  /** Records after this sequence number. */
  readonly afterSeq?: number;
  /** Records up to and including this one: an export stops at the head it started from. */
  readonly throughSeq?: number;
  readonly limit: number;
}

/** Records matching the filters in sequence order, keyset-paginated: bounded memory, stable order. */
export async function findRecords(db: Db, q: RecordQuery): Promise<AuditRecordRow[]> {
  let query = filtered(db.selectFrom('audit_records').selectAll(), q).orderBy('seq').limit(q.limit);
  if (q.afterSeq !== undefined) query = query.where('seq', '>', String(q.afterSeq));
  if (q.throughSeq !== undefined) query = query.where('seq', '<=', String(q.throughSeq));
  return query.execute();
}

export async function countRecords(db: Db, q: ExportFilters & { throughSeq: number }): Promise<number> {
  const query = filtered(
    db.selectFrom('audit_records').select((eb) => eb.fn.countAll<string>().as('n')),
    q,
  ).where('seq', '<=', String(q.throughSeq));
  return Number((await query.executeTakeFirstOrThrow()).n);
}

function filtered<O>(query: SelectQueryBuilder<Database, 'audit_records', O>, q: ExportFilters) {
  if (q.from) query = query.where('recorded_at', '>=', new Date(q.from));
  if (q.to) query = query.where('recorded_at', '<', new Date(q.to));
  if (q.accountId) query = query.where('account_id', '=', q.accountId);
  if (q.types?.length) query = query.where('type', 'in', [...q.types]);
  if (q.outcome) query = query.where('outcome', '=', q.outcome);
  return query;
}

export async function findRecordAt(db: Db, seq: number): Promise<AuditRecordRow | undefined> {
  return db.selectFrom('audit_records').selectAll().where('seq', '=', String(seq)).executeTakeFirst();
}

export async function insertCheckpoint(
  db: Db,
  c: { seq: number; hash: string; signedAt: Date; kid: string; jws: string },
): Promise<boolean> {
  const r = await db
    .insertInto('audit_checkpoints')
    .values({ seq: c.seq, hash: c.hash, signed_at: c.signedAt, kid: c.kid, jws: c.jws })
    .onConflict((oc) => oc.column('seq').doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function findCheckpoints(db: Db, o: { beforeSeq?: number; limit: number }): Promise<AuditCheckpointRow[]> {
  let query = db.selectFrom('audit_checkpoints').selectAll().orderBy('seq', 'desc').limit(o.limit);
  if (o.beforeSeq !== undefined) query = query.where('seq', '<', String(o.beforeSeq));
  return query.execute();
}

/** The latest checkpoint at or below `seq` (any, when no bound). */
export async function latestCheckpoint(db: Db, atOrBelow?: number): Promise<AuditCheckpointRow | undefined> {
  let query = db.selectFrom('audit_checkpoints').selectAll().orderBy('seq', 'desc').limit(1);
  if (atOrBelow !== undefined) query = query.where('seq', '<=', String(atOrBelow));
  return query.executeTakeFirst();
}

/** Every checkpoint in seq order, keyset-paginated. */
export async function checkpointsAfter(db: Db, afterSeq: number, limit: number): Promise<AuditCheckpointRow[]> {
  return db
    .selectFrom('audit_checkpoints')
    .selectAll()
    .where('seq', '>', String(afterSeq))
    .orderBy('seq')
    .limit(limit)
    .execute();
}

/** One account's records of one type, newest first. */
export async function findAccountRecordsDesc(
  db: Db,
  accountId: string,
  type: AuditRecordRow['type'],
  o: { beforeSeq?: number; limit: number },
) {
  let q = db
    .selectFrom('audit_records')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('type', '=', type)
    .orderBy('seq', 'desc')
    .limit(o.limit);
  if (o.beforeSeq !== undefined) q = q.where('seq', '<', String(o.beforeSeq));
  return q.execute();
}
