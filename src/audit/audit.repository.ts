import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CompiledQuery, type SelectQueryBuilder, sql } from 'kysely';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Database, Db } from '../platform/db/database';
import type { AuditCheckpointRow, AuditDecisionRow, AuditRecordRow, AuditVerdictRow } from './audit.table';
import { type ChainedRecord, type ChainHead, type PreparedDraft, seal } from './chain';
import { type DecisionItem, type SealedDecision, sealDecision } from './decisions';
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

/** What one append places in the chain: plain records (audit_records) and decision calls. */
export type ChainItem = PreparedDraft | DecisionItem;

/** An append at its place in the chain, as the inserter writes it. */
export interface Sealed {
  readonly records: readonly ChainedRecord[];
  readonly decisions: readonly SealedDecision[];
  readonly recordedAt: Date;
}

/** Writes what was sealed; the chain step does not care how. */
export type Inserter = (sealed: Sealed) => Promise<void>;

const isDecision = (item: ChainItem): item is DecisionItem => 'verdicts' in item;

/**
 * The one append path: lock the chain head (every append on every instance queues here, until
 * the caller's transaction ends), give the items their sequence numbers and links (their
 * contents are encoded and hashed already), insert them with `insert`, move the head.
 * `recorded_at` never goes backwards along the chain, whatever the instances' clocks say.
 */
export async function appendToChain(
  sql: Sql,
  insert: Inserter,
  items: readonly ChainItem[],
  now: Date,
): Promise<Sealed> {
  const [head] = await sql<{ seq: string; hash: string; recorded_at: Date }>(
    'select seq, hash, recorded_at from audit_head where id = 1 for update',
  );
  if (!head) throw new Error('audit_head is missing: the database is not migrated');
  const recordedAt = now.getTime() > head.recorded_at.getTime() ? now : head.recorded_at;
  const at = recordedAt.toISOString();
  let tip = { seq: Number(head.seq), hash: head.hash };
  const records: ChainedRecord[] = [];
  const decisions: SealedDecision[] = [];
  for (const item of items) {
    if (isDecision(item)) {
      const sealed = sealDecision(item, tip.hash, tip.seq + 1, at);
      decisions.push(sealed);
      tip = { seq: tip.seq + item.verdicts.length, hash: sealed.lastHash };
    } else {
      const [record] = seal([item], tip, recordedAt);
      records.push(record!);
      tip = { seq: record!.seq, hash: record!.hash };
    }
  }
  const sealed: Sealed = { records, decisions, recordedAt };
  await insert(sealed);
  await sql('update audit_head set seq = $1, hash = $2, recorded_at = $3 where id = 1', [
    tip.seq,
    tip.hash,
    recordedAt,
  ]);
  return sealed;
}

/**
 * Plain records in one statement and one parameter, whatever their number: a JSON array of rows.
 * (pg's encoding of text arrays escapes every string in JavaScript; JSON.stringify is several
 * times faster.) For appends inside a caller's transaction, which hold no decisions.
 */
export const insertAsJson =
  (sql: Sql): Inserter =>
  async ({ records, decisions }) => {
    if (decisions.length) throw new Error('decisions are appended by the group commit');
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

const NULL = '\\N';
/** COPY's text format: backslash, tab, newline and carriage return are escaped. */
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const copyText = (s: string | null | undefined) =>
  s === null || s === undefined ? NULL : /[\\\t\n\r]/.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : s;
/** bytea in COPY text: \\x and hex (the backslash itself escaped). */
const copyBytes = (b: Uint8Array | null) => (b === null ? NULL : `\\\\x${Buffer.from(b).toString('hex')}`);

async function copyRows(client: pg.PoolClient, table: string, columns: string, tsv: string): Promise<void> {
  await pipeline(Readable.from([tsv]), client.query(copyFrom(`copy ${table} (${columns}) from stdin`)));
}

/**
 * The group commit's inserter: COPY, several times faster than INSERT of the same rows (and this
 * runs while the chain head is locked). pg, not kysely: kysely has no COPY. One COPY per table
 * that has rows.
 */
export const insertByCopy =
  (client: pg.PoolClient): Inserter =>
  async ({ records, decisions, recordedAt }) => {
    const at = recordedAt.toISOString();
    if (records.length) {
      let tsv = '';
      for (const r of records) {
        const columns = [r.seq, at, r.type, copyText(r.accountId), copyText(r.outcome), copyText(r.content)];
        tsv += `${columns.join('\t')}\t${r.prevHash}\t${r.hash}\n`;
      }
      await copyRows(
        client,
        'audit_records',
        'seq, recorded_at, type, account_id, outcome, content, prev_hash, hash',
        tsv,
      );
    }
    if (!decisions.length) return;
    let headers = '';
    let verdicts = '';
    for (const d of decisions) {
      const h = d.item.header;
      const single = h.endpoint === 'single' && d.item.verdicts.length === 1 ? d.item.verdicts[0]! : undefined;
      headers += `${[
        d.seq,
        d.item.verdicts.length,
        at,
        h.decisionId,
        h.endpoint,
        copyText(h.clientId),
        copyText(h.requestId),
        copyText(h.purpose),
        copyText(h.categories.join(',')),
        copyText(h.recipient),
        copyText(h.reference),
        h.evaluatedAt.toISOString(),
        copyText(single?.accountId),
        copyBytes(single?.verdict ?? null),
        copyBytes(d.links),
      ].join('\t')}\n`;
      if (single) continue;
      d.item.verdicts.forEach((v, i) => {
        verdicts += `${d.seq + i}\t${copyText(v.accountId)}\t${copyBytes(v.verdict)}\n`;
      });
    }
    await copyRows(
      client,
      'audit_decisions',
      'seq, count, recorded_at, decision_id, endpoint, client_id, request_id, purpose, categories, recipient, ' +
        'reference, evaluated_at, account_id, verdict, links',
      headers,
    );
    if (verdicts) await copyRows(client, 'audit_verdicts', 'seq, account_id, verdict', verdicts);
  };

export async function readHead(db: Db): Promise<ChainHead> {
  const row = await db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  return { seq: Number(row.seq), hash: row.hash };
}

/** Which records, in which order: the filters, a range of sequence numbers, a page size. */
export interface RecordQuery extends ExportFilters {
  /** Records after this sequence number. */
  readonly afterSeq?: number;
  /** Records before this one (with order desc: the next page). */
  readonly beforeSeq?: number;
  /** Records up to and including this one: an export stops at the head it started from. */
  readonly throughSeq?: number;
  readonly limit: number;
  /** Sequence order (the default) or newest first. */
  readonly order?: 'asc' | 'desc';
}

type SeqQuery<O> = SelectQueryBuilder<Database, 'audit_records' | 'audit_decisions' | 'audit_verdicts', O>;

/** The sequence range, order and page size of a query, on any of the three tables. */
function paged<Q extends SeqQuery<unknown>>(query: Q, q: RecordQuery, seq: 'seq'): Q {
  let out = query as SeqQuery<unknown>;
  if (q.afterSeq !== undefined) out = out.where(seq, '>', String(q.afterSeq));
  if (q.beforeSeq !== undefined) out = out.where(seq, '<', String(q.beforeSeq));
  if (q.throughSeq !== undefined) out = out.where(seq, '<=', String(q.throughSeq));
  return out.orderBy(seq, q.order ?? 'asc').limit(q.limit) as Q;
}

/** Plain records (consent events, staff actions, and decisions written before format 2), as stored. */
export async function findPlainRecords(db: Db, q: RecordQuery): Promise<ChainedRecord[]> {
  let query = db.selectFrom('audit_records').selectAll();
  if (q.from) query = query.where('recorded_at', '>=', new Date(q.from));
  if (q.to) query = query.where('recorded_at', '<', new Date(q.to));
  if (q.accountId) query = query.where('account_id', '=', q.accountId);
  if (q.types?.length) query = query.where('type', 'in', [...q.types]);
  if (q.outcome) query = query.where('outcome', '=', q.outcome);
  return (await paged(query, q, 'seq').execute()).map(fromRow);
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

const allows = sql<number>`get_byte(verdict, 0) & 1`;

/** Single decisions (a header with its one verdict inline). */
export async function findSingleDecisions(db: Db, q: RecordQuery): Promise<AuditDecisionRow[]> {
  let query = db.selectFrom('audit_decisions').selectAll().where('account_id', 'is not', null);
  if (q.from) query = query.where('recorded_at', '>=', new Date(q.from));
  if (q.to) query = query.where('recorded_at', '<', new Date(q.to));
  if (q.accountId) query = query.where('account_id', '=', q.accountId);
  if (q.outcome) query = query.where(allows, '=', q.outcome === 'allow' ? 1 : 0);
  return paged(query, q, 'seq').execute();
}

/**
 * The sequence numbers of batch records in a time range: records carry no time of their own, their
 * header does (and recorded_at never decreases along the chain).
 */
async function batchSeqRange(db: Db, q: ExportFilters): Promise<{ lo?: number; hi?: number } | undefined> {
  if (!q.from && !q.to) return {};
  let query = db
    .selectFrom('audit_decisions')
    .select((eb) => [eb.fn.min('seq').as('lo'), sql<string>`max(seq + count - 1)`.as('hi')])
    .where('account_id', 'is', null);
  if (q.from) query = query.where('recorded_at', '>=', new Date(q.from));
  if (q.to) query = query.where('recorded_at', '<', new Date(q.to));
  const r = await query.executeTakeFirst();
  if (!r?.lo) return undefined;
  return { lo: Number(r.lo), hi: Number(r.hi) };
}

/** Verdicts of batch and filter calls. */
export async function findVerdicts(db: Db, q: RecordQuery): Promise<AuditVerdictRow[]> {
  const range = await batchSeqRange(db, q);
  if (!range) return [];
  let query = db.selectFrom('audit_verdicts').selectAll();
  if (range.lo !== undefined) query = query.where('seq', '>=', String(range.lo));
  if (range.hi !== undefined) query = query.where('seq', '<=', String(range.hi));
  if (q.accountId) query = query.where('account_id', '=', q.accountId);
  if (q.outcome) query = query.where(allows, '=', q.outcome === 'allow' ? 1 : 0);
  return paged(query, q, 'seq').execute();
}

/** The headers of the batch records at these sequence numbers. */
export async function findHeadersOf(db: Db, seqs: readonly number[]): Promise<AuditDecisionRow[]> {
  if (!seqs.length) return [];
  const { rows } = await sql<AuditDecisionRow>`
    select distinct on (h.seq) h.* from unnest(${seqs.map(String)}::bigint[]) as s(seq)
    cross join lateral (select * from audit_decisions d where d.seq <= s.seq order by d.seq desc limit 1) h`.execute(
    db,
  );
  return rows;
}

/** The verdicts with sequence numbers in [from, to]. */
export async function findVerdictsBetween(db: Db, from: number, to: number): Promise<AuditVerdictRow[]> {
  return db
    .selectFrom('audit_verdicts')
    .selectAll()
    .where('seq', '>=', String(from))
    .where('seq', '<=', String(to))
    .orderBy('seq')
    .execute();
}

/** How many records the filters select, up to a sequence number (an export's progress). */
export async function countRecords(db: Db, q: ExportFilters & { throughSeq: number }): Promise<number> {
  const through = String(q.throughSeq);
  const count = async <O>(query: SelectQueryBuilder<Database, keyof Database, O>) =>
    Number(((await query.executeTakeFirst()) as { n?: string } | undefined)?.n ?? 0);
  let plain = db
    .selectFrom('audit_records')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('seq', '<=', through);
  if (q.from) plain = plain.where('recorded_at', '>=', new Date(q.from));
  if (q.to) plain = plain.where('recorded_at', '<', new Date(q.to));
  if (q.accountId) plain = plain.where('account_id', '=', q.accountId);
  if (q.types?.length) plain = plain.where('type', 'in', [...q.types]);
  if (q.outcome) plain = plain.where('outcome', '=', q.outcome);
  let total = await count(plain);
  if (q.types?.length && !q.types.includes('decision')) return total;
  let singles = db
    .selectFrom('audit_decisions')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('account_id', 'is not', null)
    .where('seq', '<=', through);
  if (q.from) singles = singles.where('recorded_at', '>=', new Date(q.from));
  if (q.to) singles = singles.where('recorded_at', '<', new Date(q.to));
  if (q.accountId) singles = singles.where('account_id', '=', q.accountId);
  if (q.outcome) singles = singles.where(allows, '=', q.outcome === 'allow' ? 1 : 0);
  total += await count(singles);
  const range = await batchSeqRange(db, q);
  if (!range) return total;
  let verdicts = db
    .selectFrom('audit_verdicts')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('seq', '<=', through);
  if (range.lo !== undefined) verdicts = verdicts.where('seq', '>=', String(range.lo));
  if (range.hi !== undefined) verdicts = verdicts.where('seq', '<=', String(range.hi));
  if (q.accountId) verdicts = verdicts.where('account_id', '=', q.accountId);
  if (q.outcome) verdicts = verdicts.where(allows, '=', q.outcome === 'allow' ? 1 : 0);
  return total + (await count(verdicts));
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
