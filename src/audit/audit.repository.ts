import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CompiledQuery, type SelectQueryBuilder } from 'kysely';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Database, Db } from '../platform/db/database';
import type { AuditCheckpointRow, AuditRecordRow } from './audit.table';
import { type AuditType, type ChainedRecord, type ChainHead, type PreparedDraft, seal } from './chain';
import type { ExportFilters } from './formats';

/** A raw statement runner: the same chain step runs in a Kysely transaction and on a pg client (for COPY). */
export type Sql = <R = Record<string, unknown>>(text: string, params?: readonly unknown[]) => Promise<R[]>;

export const sqlOf =
  (db: Db): Sql =>
  async <R>(text: string, params: readonly unknown[] = []) =>
    (await db.executeQuery<R>(CompiledQuery.raw(text, [...params]))).rows;

export const sqlOfClient =
  (client: pg.ClientBase): Sql =>
  async <R>(text: string, params: readonly unknown[] = []) =>
    (await client.query({ text, values: [...params] })).rows as R[];

/** Writes sealed records; the chain step does not care how. */
export type Inserter = (records: readonly ChainedRecord[]) => Promise<void>;

/**
 * The one append path: lock the chain head (every append on every instance queues here, until
 * the caller's transaction ends), place the drafts after it, insert them with `insert`, move the
 * head. `recorded_at` never goes backwards along the chain, whatever the instances' clocks say.
 */
export async function appendToChain(
  sql: Sql,
  insert: Inserter,
  drafts: readonly PreparedDraft[],
  now: Date,
): Promise<ChainedRecord[]> {
  if (drafts.length === 0) return [];
  const [head] = await sql<{ seq: string; hash: string; recorded_at: Date }>(
    'select seq, hash, recorded_at from audit_head where id = 1 for update',
  );
  if (!head) throw new Error('audit_head is missing: the database is not migrated');
  const recordedAt = now.getTime() > head.recorded_at.getTime() ? now : head.recorded_at;
  const records = seal(drafts, { seq: Number(head.seq), hash: head.hash }, recordedAt);
  await insert(records);
  const last = records[records.length - 1]!;
  await sql('update audit_head set seq = $1, hash = $2, recorded_at = $3 where id = 1', [
    last.seq,
    last.hash,
    recordedAt,
  ]);
  return records;
}

/**
 * One statement and one parameter for any number of records: a JSON array of rows. (pg's
 * encoding of text arrays escapes every string in JavaScript; JSON.stringify is several times
 * faster, and this runs while the chain head is locked.)
 */
export const insertAsJson =
  (sql: Sql): Inserter =>
  async (records) => {
    const rows = JSON.stringify(
      records.map((r) => [r.seq, r.recordedAt, r.type, r.accountId, r.outcome, r.content, r.prevHash, r.hash]),
    );
    await sql(
      `insert into audit_records (seq, recorded_at, type, account_id, outcome, content, prev_hash, hash)
       select (r->>0)::bigint, (r->>1)::timestamptz, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7
       from json_array_elements($1::json) as r`,
      [rows],
    );
  };

/**
 * COPY, five times faster than an INSERT of the same rows (and this runs while the chain head is
 * locked). pg, not kysely: kysely has no COPY.
 */
export const insertByCopy =
  (client: pg.PoolClient): Inserter =>
  async (records) => {
    let tsv = '';
    for (const r of records) {
      const account = r.accountId === null ? '\\N' : copyText(r.accountId);
      const columns = [r.seq, r.recordedAt.toISOString(), r.type, account, r.outcome ?? '\\N', copyText(r.content)];
      tsv += `${columns.join('\t')}\t${r.prevHash}\t${r.hash}\n`;
    }
    await pipeline(
      Readable.from([tsv]),
      client.query(
        copyFrom(
          'copy audit_records (seq, recorded_at, type, account_id, outcome, content, prev_hash, hash) from stdin',
        ),
      ),
    );
  };

/** COPY's text format: backslash, tab, newline and carriage return are escaped. */
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const copyText = (s: string) => (/[\\\t\n\r]/.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : s);

export async function readHead(db: Db): Promise<ChainHead> {
  const row = await db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  return { seq: Number(row.seq), hash: row.hash };
}

export interface RecordQuery extends ExportFilters {
  /** Records after this sequence number. */
  readonly afterSeq?: number;
  /** Records up to and including this one: an export stops at the head it started from. */
  readonly throughSeq?: number;
  readonly limit: number;
}

/** Records matching the filters in sequence order, keyset-paginated: bounded memory, stable order. */
export async function findRecords(db: Db, q: RecordQuery): Promise<ChainedRecord[]> {
  let query = filtered(db.selectFrom('audit_records').selectAll(), q).orderBy('seq').limit(q.limit);
  if (q.afterSeq !== undefined) query = query.where('seq', '>', String(q.afterSeq));
  if (q.throughSeq !== undefined) query = query.where('seq', '<=', String(q.throughSeq));
  return (await query.execute()).map(fromRow);
}

const fromRow = (r: AuditRecordRow): ChainedRecord => ({
  seq: Number(r.seq),
  recordedAt: r.recorded_at,
  type: r.type,
  accountId: r.account_id,
  outcome: r.outcome,
  content: r.content,
  prevHash: r.prev_hash,
  hash: r.hash,
});

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
  type: AuditType,
  o: { beforeSeq?: number; limit: number },
): Promise<ChainedRecord[]> {
  let q = db
    .selectFrom('audit_records')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('type', '=', type)
    .orderBy('seq', 'desc')
    .limit(o.limit);
  if (o.beforeSeq !== undefined) q = q.where('seq', '<', String(o.beforeSeq));
  return (await q.execute()).map(fromRow);
}
