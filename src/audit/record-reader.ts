import type { Db } from '../platform/db/database';
import * as repo from './audit.repository';
import type { AuditDecisionRow, AuditVerdictRow } from './audit.table';
import { type ChainedRecord, contentAt, linkHash } from './chain';
import { DecisionBodies, type DecisionHeader, saltAt, TILE, tileLink } from './decisions';

/**
 * The audit log as one sequence of records, whatever table holds them: plain records
 * (audit_records), single decisions (audit_decisions with their verdict inline) and the accounts
 * of batch and filter calls (audit_verdicts under their header). Decision records are rebuilt,
 * content and links, from their header and verdict bytes; a record's link is computed from the
 * link the header keeps at the start of its tile (TILE records), so any record costs at most TILE
 * of its neighbours.
 */
/** A rebuilt record; `altered` when the links of its tile do not end where its header says they end. */
export type ReadRecord = ChainedRecord & { readonly altered?: { readonly from: number; readonly to: number } };

export async function readRecords(db: Db, q: repo.RecordQuery): Promise<ReadRecord[]> {
  const decisions = !q.types?.length || q.types.includes('decision');
  const [plain, singles, verdicts] = await Promise.all([
    repo.findPlainRecords(db, q),
    decisions ? repo.findSingleDecisions(db, q) : [],
    decisions ? repo.findVerdicts(db, q) : [],
  ]);
  const desc = q.order === 'desc';
  const merged: ({ seq: number } & (
    | { plain: ChainedRecord }
    | { single: AuditDecisionRow }
    | { verdict: AuditVerdictRow }
  ))[] = [
    ...plain.map((p) => ({ seq: p.seq, plain: p })),
    ...singles.map((s) => ({ seq: Number(s.seq), single: s })),
    ...verdicts.map((v) => ({ seq: Number(v.seq), verdict: v })),
  ];
  merged.sort((a, b) => (desc ? b.seq - a.seq : a.seq - b.seq));
  merged.length = Math.min(merged.length, q.limit);

  const rebuild = new Rebuilder(db, verdicts);
  await rebuild.loadHeaders(merged.flatMap((m) => ('verdict' in m ? [m.seq] : [])));
  const out: ReadRecord[] = [];
  for (const m of merged) {
    if ('plain' in m) out.push(m.plain);
    else if ('single' in m) out.push(rebuild.single(m.single));
    else out.push(await rebuild.verdict(m.verdict));
  }
  return out;
}

const headerOf = (h: AuditDecisionRow): DecisionHeader => ({
  decisionId: h.decision_id,
  endpoint: h.endpoint,
  clientId: h.client_id,
  requestId: h.request_id ?? h.decision_id,
  purpose: h.purpose,
  categories: h.categories.split(','),
  ...(h.recipient === null ? {} : { recipient: h.recipient }),
  ...(h.reference === null ? {} : { reference: h.reference }),
  evaluatedAt: h.evaluated_at,
});

/** Rebuilds decision records, remembering headers and the tiles it has linked within one read. */
class Rebuilder {
  private headers: AuditDecisionRow[] = [];
  private readonly bodies = new Map<string, DecisionBodies>();
  /** seq → [prevHash, hash], for every record of the tiles linked so far. */
  private readonly links = new Map<number, readonly [string, string]>();
  /** seq → the range of its tile, for records of tiles whose links do not end as their header says. */
  private readonly altered = new Map<number, { from: number; to: number }>();

  /**
   * The verdicts read for the page, by seq: a tile they hold whole is linked without reading it again. A seq held twice
   * (null) sends its tile to the database, which counts the rows.
   */
  private readonly fetched = new Map<number, AuditVerdictRow | null>();

  constructor(
    private readonly db: Db,
    verdicts: readonly AuditVerdictRow[],
  ) {
    for (const v of verdicts) {
      const seq = Number(v.seq);
      this.fetched.set(seq, this.fetched.has(seq) ? null : v);
    }
  }

  async loadHeaders(seqs: readonly number[]): Promise<void> {
    this.headers = (await repo.findHeadersOf(this.db, seqs)).sort((a, b) => Number(a.seq) - Number(b.seq));
  }

  single(h: AuditDecisionRow): ChainedRecord {
    const seq = Number(h.seq);
    return this.record(h, seq, h.account_id!, h.verdict!, tileLink(h.links, 0), tileLink(h.links, 1));
  }

  async verdict(v: AuditVerdictRow): Promise<ReadRecord> {
    const seq = Number(v.seq);
    const h = this.headerOf(seq);
    // A verdict no header holds (inserted behind the log's back): a record that cannot verify.
    if (!h)
      return {
        seq,
        recordedAt: new Date(0),
        type: 'decision',
        accountId: v.account_id,
        outcome: null,
        content: '',
        prevHash: '',
        hash: '',
      };
    if (!this.links.has(seq)) await this.linkTile(h, seq);
    const [prevHash, hash] = this.links.get(seq)!;
    const altered = this.altered.get(seq);
    return { ...this.record(h, seq, v.account_id, v.verdict, prevHash, hash), ...(altered ? { altered } : {}) };
  }

  private record(
    h: AuditDecisionRow,
    seq: number,
    accountId: string,
    verdict: Buffer,
    prevHash: string,
    hash: string,
  ): ChainedRecord {
    const prepared = this.prepared(h, seq, accountId, verdict);
    const accountSalt = saltOf(h, seq);
    const base = {
      seq,
      recordedAt: h.recorded_at,
      type: 'decision' as const,
      accountId,
      prevHash,
      hash,
      ...(accountSalt ? { accountSalt } : {}),
    };
    // Bytes that do not decode (written behind the log's back): a record that cannot verify.
    if (!prepared) return { ...base, outcome: null, content: '' };
    return { ...base, outcome: prepared.outcome, content: contentAt(prepared, seq, h.recorded_at.toISOString()) };
  }

  private prepared(h: AuditDecisionRow, seq: number, accountId: string, verdict: Buffer) {
    try {
      return this.bodiesOf(h).prepared(accountId, verdict, saltOf(h, seq));
    } catch {
      return undefined;
    }
  }

  private headerOf(seq: number): AuditDecisionRow | undefined {
    // The last header that starts at or before seq (headers sorted by seq).
    let lo = 0;
    let hi = this.headers.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (Number(this.headers[mid]!.seq) <= seq) lo = mid;
      else hi = mid - 1;
    }
    const h = this.headers[lo];
    return h && Number(h.seq) <= seq && seq < Number(h.seq) + h.count ? h : undefined;
  }

  private bodiesOf(h: AuditDecisionRow): DecisionBodies {
    let bodies = this.bodies.get(String(h.seq));
    if (!bodies) {
      bodies = new DecisionBodies(headerOf(h));
      this.bodies.set(String(h.seq), bodies);
    }
    return bodies;
  }

  /** Links every record of the tile holding `seq`, from the link its header keeps at the tile's start. */
  private async linkTile(h: AuditDecisionRow, seq: number): Promise<void> {
    const first = Number(h.seq);
    const tile = Math.floor((seq - first) / TILE);
    const from = first + tile * TILE;
    const to = Math.min(from + TILE, first + h.count) - 1;
    const rows = await this.tileRows(from, to);
    const recordedAt = h.recorded_at.toISOString();
    let hash = tileLink(h.links, tile);
    for (const r of rows) {
      const prevHash = hash;
      const contentHash = this.prepared(h, Number(r.seq), r.account_id, r.verdict)?.contentHash ?? '';
      hash = linkHash(prevHash, Number(r.seq), recordedAt, contentHash);
      this.links.set(Number(r.seq), [prevHash, hash]);
    }
    // The header keeps the link after the tile (the next tile's start, or the last link): it must be where this ends.
    if (rows.length !== to - from + 1 || hash !== tileLink(h.links, tile + 1)) {
      for (const r of rows) this.altered.set(Number(r.seq), { from, to });
    }
  }

  private async tileRows(from: number, to: number): Promise<AuditVerdictRow[]> {
    const rows: AuditVerdictRow[] = [];
    for (let seq = from; seq <= to; seq++) {
      const row = this.fetched.get(seq);
      if (!row) return repo.findVerdictsBetween(this.db, from, to);
      rows.push(row);
    }
    return rows;
  }
}

/** A decision record's account salt (format 3), from its header's seed; none for a header from before salts. */
const saltOf = (h: AuditDecisionRow, seq: number) =>
  h.account_seed ? saltAt(h.account_seed, seq - Number(h.seq)) : undefined;
