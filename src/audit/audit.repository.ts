import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CompiledQuery, type Insertable, type SelectQueryBuilder, sql } from 'kysely';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Database, Db } from '../platform/db/database';
import { secureRandomBytes } from '../platform/random';
import type {
  AuditCheckpointRow,
  AuditDecisionRow,
  AuditRecordRow,
  AuditVerdictRow,
  AuditVerificationRow,
  AuditVerificationTable,
} from './audit.table';
import { type ChainedRecord, type ChainHead, type PreparedDraft, seal } from './chain';
import { type DecisionItem, type SealedDecision, sealDecision } from './decisions';
import type { ExportFilters } from './formats';

/** What one append places in the chain: plain records (audit_records) and decision calls. */
export type ChainItem = PreparedDraft | DecisionItem;

/** An append at its place in the chain: what to write, and where the head moves. */
export interface Sealed {
  readonly records: readonly ChainedRecord[];
  readonly decisions: readonly SealedDecision[];
  readonly recordedAt: Date;
  /** The new head: the last record's seq and hash. */
  readonly tip: ChainHead;
}

/**
 * How an append reaches the database: lock the chain head and read it; then write what was sealed
 * and move the head, in the same transaction. One session writes inside a caller's transaction,
 * the other is the group commit's own.
 */
export interface ChainSession {
  lockHead(): Promise<ChainHead & { readonly recordedAt: Date }>;
  write(sealed: Sealed): Promise<void>;
}

const isDecision = (item: ChainItem): item is DecisionItem => 'verdicts' in item;

/**
 * The one append path: lock the chain head (every append on every instance queues here, until
 * the transaction ends), give the items their sequence numbers and links (their contents are
 * encoded and hashed already), write them and move the head. `recorded_at` never goes backwards
 * along the chain, whatever the instances' clocks say.
 */
export async function appendToChain(session: ChainSession, items: readonly ChainItem[], now: Date): Promise<Sealed> {
  const head = await session.lockHead();
  const recordedAt = now.getTime() > head.recordedAt.getTime() ? now : head.recordedAt;
  const at = recordedAt.toISOString();
  let tip: ChainHead = { seq: head.seq, hash: head.hash };
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
  const sealed: Sealed = { records, decisions, recordedAt, tip };
  await session.write(sealed);
  return sealed;
}

const HEAD_SQL = 'select seq, hash, recorded_at from audit_head where id = 1 for update';
const headOf = (row: { seq: string; hash: string; recorded_at: Date } | undefined) => {
  if (!row) throw new Error('audit_head is missing: the database is not migrated');
  return { seq: Number(row.seq), hash: row.hash, recordedAt: row.recorded_at };
};

const recordRow = (r: ChainedRecord) => [
  r.seq,
  r.recordedAt,
  r.type,
  r.accountId,
  r.outcome,
  r.content,
  r.prevHash,
  r.hash,
  r.accountSalt ?? null,
];

/** The month's partitions (migration 0011): a no-op once they exist, which the retention job sees to ahead of time. */
const ENSURE_PARTITION = 'select optgate_audit_partition(%s)';

const INSERT_RECORDS = `
  insert into audit_records (seq, recorded_at, type, account_id, outcome, content, prev_hash, hash, account_salt)
  select (r->>0)::bigint, (r->>1)::timestamptz, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8
  from jsonb_array_elements(%s::jsonb) r`;

/**
 * Inside a caller's Kysely transaction (consent events, account imports, the CLI): plain records
 * only, in one statement and one parameter whatever their number (a JSON array of rows).
 */
export const transactionSession = (trx: Db): ChainSession => ({
  async lockHead() {
    return headOf(
      (await trx.executeQuery<{ seq: string; hash: string; recorded_at: Date }>(CompiledQuery.raw(HEAD_SQL))).rows[0],
    );
  },
  async write({ records, decisions, tip, recordedAt }) {
    if (decisions.length) throw new Error('decisions are appended by the group commit');
    await trx.executeQuery(CompiledQuery.raw(ENSURE_PARTITION.replace('%s', '$1'), [recordedAt]));
    await trx.executeQuery(
      CompiledQuery.raw(INSERT_RECORDS.replace('%s', '$1'), [JSON.stringify(records.map(recordRow))]),
    );
    await trx.executeQuery(
      CompiledQuery.raw('update audit_head set seq = $1, hash = $2, recorded_at = $3 where id = 1', [
        tip.seq,
        tip.hash,
        recordedAt,
      ]),
    );
  },
});

/** Above this many batch verdicts in one commit, they go in by COPY (a round trip more, far less parsing). */
const COPY_VERDICTS_FROM = 2000;

/**
 * The group commit's own transaction, in two round trips: `begin` with the lock; then every
 * insert, the head's move and `commit` as one text (its rows as dollar-quoted JSON literals: a
 * statement per table, not per row, and nothing to escape; jsonb, which PostgreSQL parses once
 * per row where json's ->> parses again for every field: half the backend's time). A large
 * batch's verdicts go in first, by COPY.
 */
export const groupCommitSession = (client: pg.PoolClient): ChainSession => ({
  async lockHead() {
    const results = (await client.query(`begin; ${HEAD_SQL}`)) as unknown as pg.QueryResult[];
    return headOf(results[1]?.rows[0]);
  },
  async write({ records, decisions, tip, recordedAt }) {
    const at = recordedAt.toISOString();
    const day = at.slice(0, 10);
    // The partition check first, in the same round trip as the inserts.
    const statements: string[] = [ENSURE_PARTITION.replace('%s', `'${at}'`)];
    if (records.length) statements.push(INSERT_RECORDS.replace('%s', literal(records.map(recordRow))));
    const headers: unknown[][] = [];
    const verdicts: Verdicts = { day, rows: [] };
    for (const d of decisions) {
      const h = d.item.header;
      const single = h.endpoint === 'single' && d.item.verdicts.length === 1 ? d.item.verdicts[0]! : undefined;
      headers.push([
        d.seq,
        d.item.verdicts.length,
        at,
        h.decisionId,
        h.endpoint,
        h.clientId,
        // The same id twice (a single decision of a request whose id optgate issued) is stored once.
        h.requestId === h.decisionId ? null : h.requestId,
        h.purpose,
        h.categories.join(','),
        h.recipient ?? null,
        h.reference ?? null,
        h.evaluatedAt.toISOString(),
        single?.accountId ?? null,
        single ? single.verdict.toString('hex') : null,
        d.links.toString('hex'),
        d.item.seed.toString('hex'),
      ]);
      if (single) continue;
      d.item.verdicts.forEach((v, i) => {
        verdicts.rows.push([d.seq + i, v.accountId, v.verdict.toString('hex')]);
      });
    }
    if (headers.length) {
      statements.push(`
        insert into audit_decisions (seq, count, recorded_at, decision_id, endpoint, client_id, request_id,
          purpose, categories, recipient, reference, evaluated_at, account_id, verdict, links, account_seed)
        select (r->>0)::bigint, (r->>1)::int, (r->>2)::timestamptz, (r->>3)::uuid, r->>4, r->>5, r->>6, r->>7, r->>8,
          r->>9, r->>10, (r->>11)::timestamptz, r->>12, decode(r->>13, 'hex'), decode(r->>14, 'hex'),
          decode(r->>15, 'hex')
        from jsonb_array_elements(${literal(headers)}::jsonb) r`);
    }
    if (verdicts.rows.length >= COPY_VERDICTS_FROM) {
      // The COPY goes first: so does the partition it needs.
      await client.query(statements.shift()!);
      await copyVerdicts(client, verdicts);
    } else if (verdicts.rows.length) {
      statements.push(`insert into audit_verdicts (seq, account_id, verdict, recorded_on)
        select (r->>0)::bigint, r->>1, decode(r->>2, 'hex'), '${day}'
        from jsonb_array_elements(${literal(verdicts.rows)}::jsonb) r`);
    }
    statements.push(
      `update audit_head set seq = ${tip.seq}, hash = '${tip.hash}', recorded_at = '${at}' where id = 1`,
      'commit',
    );
    await client.query(statements.join(';\n'));
  },
});

/** JSON as a dollar-quoted literal: no escaping at all, with a tag the text does not hold. */
function literal(rows: unknown): string {
  const json = JSON.stringify(rows);
  for (let tag = '$j$'; ; tag = `$j${secureRandomBytes(6).toString('hex')}$`) {
    if (!json.includes(tag)) return `${tag}${json}${tag}`;
  }
}

/** COPY's text format: backslash, tab, newline and carriage return are escaped. */
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const copyText = (s: string) => (/[\\\t\n\r]/.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : s);

/** A commit's batch verdicts: (seq, account, verdict hex), all of one day (their partition key, `recorded_on`). */
interface Verdicts {
  readonly day: string;
  readonly rows: [number, string, string][];
}

async function copyVerdicts(client: pg.PoolClient, { day, rows }: Verdicts): Promise<void> {
  let tsv = '';
  // bytea in COPY text: \\x and hex (the backslash itself escaped).
  for (const [seq, account, hex] of rows) tsv += `${seq}\t${copyText(account)}\t\\\\x${hex}\t${day}\n`;
  await pipeline(
    Readable.from([tsv]),
    client.query(copyFrom('copy audit_verdicts (seq, account_id, verdict, recorded_on) from stdin')),
  );
}

/**
 * Brings the BRIN indexes' summaries up to date (new page ranges only, so cheap when called often):
 * a range query on a BRIN index reads every page it has no summary of. Only a speed-up: a failure
 * (a database from before migration 0009, a timeout) leaves queries slower, never wrong.
 */
export async function summarizeIndexes(db: Db): Promise<boolean> {
  try {
    await sql`select optgate_summarize_brin()`.execute(db);
    return true;
  } catch {
    return false;
  }
}

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
  /** Staff actions of these kinds only (records of the other types are not affected). */
  readonly staffActions?: readonly string[];
}

/** Where canonical JSON holds a key with a string value: a needle no escaped string inside a value can hold. */
const jsonField = (key: string, value: string) => `${JSON.stringify(key)}:${JSON.stringify(value)}`;

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
  if (q.purpose) query = query.where('type', 'in', PURPOSE_TYPES).where(plainPurpose, '=', q.purpose);
  const actions = q.staffActions;
  if (actions?.length) {
    query = query.where((eb) =>
      eb.or([
        eb('type', '!=', 'staff_action'),
        ...actions.map((a) => sql<boolean>`strpos(content, ${jsonField('action', a)}) > 0`),
      ]),
    );
  }
  return (await paged(query, q, 'seq').execute()).map(fromRow);
}

/** The sequence numbers of consent events' records, by event id (through the account's index, then the content). */
export async function findConsentEventSeqs(
  db: Db,
  accountId: string,
  eventIds: readonly string[],
): Promise<Map<string, number>> {
  const ids = eventIds.filter((id) => /^[0-9a-f-]{36}$/.test(id));
  if (!ids.length) return new Map();
  const rows = await db
    .selectFrom('audit_records')
    .select(['seq', 'content'])
    .where('account_id', '=', accountId)
    .where('type', '=', 'consent_event')
    .where(sql<boolean>`content like any (${ids.map((id) => `%"eventId":"${id}"%`)}::text[])`)
    .execute();
  const wanted = new Set(ids);
  const seqs = new Map<string, number>();
  for (const row of rows) {
    const eventId = /"eventId":"([0-9a-f-]{36})"/.exec(row.content)?.[1];
    if (eventId && wanted.has(eventId)) seqs.set(eventId, Number(row.seq));
  }
  return seqs;
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
  ...(r.account_salt ? { accountSalt: r.account_salt } : {}),
});

const allows = sql<number>`get_byte(verdict, 0) & 1`;

/**
 * The purpose filter on plain records: the records that have a purpose (consent events, and decisions written before
 * format 2), by the purpose their content names. No index: it narrows what the other filters (the account's index, a
 * time range, the page's sequence range) already bound, like `outcome` does.
 */
const PURPOSE_TYPES = ['decision', 'consent_event'] as const;
const plainPurpose = sql<string>`(content::jsonb #>> '{data,purpose}')`;

/**
 * The purpose of a batch verdict is its header's: the last batch header at or before its seq (a batch's records are
 * consecutive), one probe of audit_decisions_batches_idx per verdict. Used where the (account_id, seq) index already
 * bounds the verdicts read to one account's.
 */
const verdictPurpose = (purpose: string) =>
  sql<boolean>`(select h.purpose from audit_decisions h where h.account_id is null and h.seq <= audit_verdicts.seq
    order by h.seq desc limit 1) = ${purpose}`;

/** Single decisions (a header with its one verdict inline). */
export async function findSingleDecisions(db: Db, q: RecordQuery): Promise<AuditDecisionRow[]> {
  let query = db.selectFrom('audit_decisions').selectAll().where('account_id', 'is not', null);
  if (q.from) query = query.where('recorded_at', '>=', new Date(q.from));
  if (q.to) query = query.where('recorded_at', '<', new Date(q.to));
  if (q.accountId) query = query.where('account_id', '=', q.accountId);
  if (q.outcome) query = query.where(allows, '=', q.outcome === 'allow' ? 1 : 0);
  if (q.purpose) query = query.where('purpose', '=', q.purpose);
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

/**
 * Verdicts of batch and filter calls, the first `limit` in the query's order. For one account the
 * (account_id, seq) index gives them in order. Otherwise no b-tree orders them (audit_verdicts has
 * a BRIN index on seq, which finds ranges and keeps the table narrow): the batch headers in the
 * range say which sequence numbers hold verdicts, and those spans are read in order, each read
 * covering at least as many records as are still wanted (twice as many each time a filter leaves
 * the page short). A page costs the records it passes over, not the log after it.
 */
export async function findVerdicts(db: Db, q: RecordQuery): Promise<AuditVerdictRow[]> {
  const range = await batchSeqRange(db, q);
  if (!range) return [];
  const select = () => {
    let query = db.selectFrom('audit_verdicts').selectAll();
    if (q.accountId) query = query.where('account_id', '=', q.accountId);
    if (q.outcome) query = query.where(allows, '=', q.outcome === 'allow' ? 1 : 0);
    return query;
  };
  if (q.accountId) {
    let query = select();
    if (q.purpose) query = query.where(verdictPurpose(q.purpose));
    if (range.lo !== undefined) query = query.where('seq', '>=', String(range.lo));
    if (range.hi !== undefined) query = query.where('seq', '<=', String(range.hi));
    return paged(query, q, 'seq').execute();
  }

  const desc = q.order === 'desc';
  let lo = Math.max(range.lo ?? 1, (q.afterSeq ?? 0) + 1);
  let hi = Math.min(
    range.hi ?? Number.MAX_SAFE_INTEGER,
    q.throughSeq ?? Number.MAX_SAFE_INTEGER,
    (q.beforeSeq ?? Number.MAX_SAFE_INTEGER) - 1,
  );
  const out: AuditVerdictRow[] = [];
  for (let wanted = q.limit; out.length < q.limit && lo <= hi; wanted *= 2) {
    const spans = await batchSpans(db, lo, hi, desc, wanted, q.purpose);
    if (!spans) break;
    let query = select().where('seq', '>=', String(spans.from)).where('seq', '<=', String(spans.to));
    // Of one purpose: only the spans of its headers, not the other calls' records between them.
    if (q.purpose) {
      const { ranges } = spans;
      query = query.where((eb) =>
        eb.or(ranges.map(([a, b]) => eb.and([eb('seq', '>=', String(a)), eb('seq', '<=', String(b))]))),
      );
    }
    const rows = await query
      .orderBy('seq', desc ? 'desc' : 'asc')
      .limit(q.limit - out.length)
      .execute();
    out.push(...rows);
    if (desc) hi = spans.from - 1;
    else lo = spans.to + 1;
  }
  return out;
}

/** Headers read at most per span with a purpose filter: each is a range of the verdicts' query. */
const PURPOSE_HEADERS = 200;

/**
 * From the start of [lo, hi] in the given order (lo ascending, hi descending), the smallest range
 * that holds at least `wanted` verdicts (or all that are left), read from the batch headers;
 * undefined when no batch record lies in [lo, hi]. With a purpose, only its calls' headers count
 * (at most PURPOSE_HEADERS of them), and `ranges` lists their spans within the range.
 */
async function batchSpans(
  db: Db,
  lo: number,
  hi: number,
  desc: boolean,
  wanted: number,
  purpose?: string,
): Promise<{ from: number; to: number; ranges: [number, number][] } | undefined> {
  // Headers overlapping [lo, hi], in order: the one that holds lo (it starts at or before it), then those after it.
  const { rows } = await sql<{ seq: string; count: number }>`
    select seq, count from audit_decisions
    where account_id is null and seq <= ${hi}
      and seq >= coalesce((select max(seq) from audit_decisions where account_id is null and seq <= ${lo}), ${lo})
      and seq + count - 1 >= ${lo}
      ${purpose === undefined ? sql`` : sql`and purpose = ${purpose}`}
    order by seq ${sql.raw(desc ? 'desc' : 'asc')}
    limit ${Math.min(wanted, purpose === undefined ? 10_000 : PURPOSE_HEADERS)}`.execute(db);
  if (!rows.length) return undefined;
  let held = 0;
  let from = Number.MAX_SAFE_INTEGER;
  let to = 0;
  const ranges: [number, number][] = [];
  for (const r of rows) {
    const start = Math.max(lo, Number(r.seq));
    const end = Math.min(hi, Number(r.seq) + r.count - 1);
    from = Math.min(from, start);
    to = Math.max(to, end);
    ranges.push([start, end]);
    held += end - start + 1;
    if (held >= wanted) break;
  }
  return { from, to, ranges };
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
  if (q.purpose) plain = plain.where('type', 'in', PURPOSE_TYPES).where(plainPurpose, '=', q.purpose);
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
  if (q.purpose) singles = singles.where('purpose', '=', q.purpose);
  total += await count(singles);
  const range = await batchSeqRange(db, q);
  if (!range) return total;
  if (q.purpose) return total + (await countVerdictsOfPurpose(db, { ...q, purpose: q.purpose }, range));
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

/**
 * Batch verdicts of one purpose, up to a sequence number, header by header (a lateral join: the planner may not turn
 * it around and probe the headers once per verdict). Without an account or outcome, the headers' spans alone say how
 * many; otherwise each header's span is counted in audit_verdicts, through the account's index or the BRIN on seq.
 */
async function countVerdictsOfPurpose(
  db: Db,
  q: ExportFilters & { throughSeq: number; purpose: string },
  range: { lo?: number; hi?: number },
): Promise<number> {
  const lo = range.lo ?? 1;
  const hi = Math.min(range.hi ?? Number.MAX_SAFE_INTEGER, q.throughSeq);
  const headers = sql`select seq, count from audit_decisions
    where account_id is null and purpose = ${q.purpose} and seq <= ${hi} and seq + count - 1 >= ${lo}`;
  if (!q.accountId && !q.outcome) {
    const { rows } = await sql<{ n: string | null }>`
      select sum(least(h.seq + h.count - 1, ${hi}) - greatest(h.seq, ${lo}) + 1) as n from (${headers}) h`.execute(db);
    return Number(rows[0]?.n ?? 0);
  }
  const account = q.accountId ? sql`and v.account_id = ${q.accountId}` : sql``;
  const outcome = q.outcome ? sql`and get_byte(v.verdict, 0) & 1 = ${q.outcome === 'allow' ? 1 : 0}` : sql``;
  const { rows } = await sql<{ n: string | null }>`
    select sum(c.n) as n from (${headers}) h
    cross join lateral (
      select count(*) as n from audit_verdicts v
      where v.seq >= greatest(h.seq, ${lo}) and v.seq <= least(h.seq + h.count - 1, ${hi}) ${account} ${outcome}
    ) c`.execute(db);
  return Number(rows[0]?.n ?? 0);
}

export async function insertCheckpoint(
  db: Db,
  c: { seq: number; hash: string; rootHash: string; signedAt: Date; kid: string; jws: string },
): Promise<boolean> {
  const r = await db
    .insertInto('audit_checkpoints')
    .values({ seq: c.seq, hash: c.hash, root_hash: c.rootHash, signed_at: c.signedAt, kid: c.kid, jws: c.jws })
    .onConflict((oc) => oc.column('seq').doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function findCheckpoints(
  db: Db,
  o: { beforeSeq?: number; limit: number; treeHeads?: boolean },
): Promise<AuditCheckpointRow[]> {
  let query = db.selectFrom('audit_checkpoints').selectAll().orderBy('seq', 'desc').limit(o.limit);
  if (o.beforeSeq !== undefined) query = query.where('seq', '<', String(o.beforeSeq));
  if (o.treeHeads) query = query.where('root_hash', 'is not', null);
  return query.execute();
}

/** The signed tree head of exactly this size, or the latest one. */
export async function findTreeHead(db: Db, size?: number): Promise<AuditCheckpointRow | undefined> {
  let query = db.selectFrom('audit_checkpoints').selectAll().where('root_hash', 'is not', null);
  query = size === undefined ? query.orderBy('seq', 'desc').limit(1) : query.where('seq', '=', String(size));
  return query.executeTakeFirst();
}

/** The chain head and the latest checkpoint (its size and signing time): two single-row index reads, for /metrics. */
export async function signingState(db: Db): Promise<{ headSeq: number; signedSeq: number; signedAt?: Date }> {
  const head = await readHead(db);
  const latest = await db
    .selectFrom('audit_checkpoints')
    .select(['seq', 'signed_at'])
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return { headSeq: head.seq, signedSeq: Number(latest?.seq ?? 0), signedAt: latest?.signed_at };
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

// ---- Verifications of the log (audit_verifications, migration 0019) ----

export type NewVerification = Insertable<AuditVerificationTable>;

export async function insertVerification(db: Db, v: NewVerification): Promise<AuditVerificationRow> {
  return db.insertInto('audit_verifications').values(v).returningAll().executeTakeFirstOrThrow();
}

/** The latest verifications, newest first; `result`: one kind. One read of the primary key or a partial index. */
export async function latestVerifications(
  db: Db,
  limit: number,
  o: { readonly result?: 'intact' | 'broken'; readonly afterId?: string; readonly toSeqBelow?: number } = {},
): Promise<AuditVerificationRow[]> {
  let query = db.selectFrom('audit_verifications').selectAll().orderBy('id', 'desc').limit(limit);
  if (o.result) query = query.where('result', '=', o.result);
  if (o.afterId !== undefined) query = query.where('id', '>', o.afterId);
  if (o.toSeqBelow !== undefined) query = query.where('to_seq', '<', String(o.toSeqBelow));
  return query.execute();
}

/** An intact verification after run `afterId` that checked record `seq`: a problem found there is gone. */
export async function verifiedSince(db: Db, afterId: string, seq: number): Promise<boolean> {
  const row = await db
    .selectFrom('audit_verifications')
    .select('id')
    .where('result', '=', 'intact')
    .where('id', '>', afterId)
    .where('from_seq', '<=', String(seq))
    .where('to_seq', '>=', String(seq))
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
