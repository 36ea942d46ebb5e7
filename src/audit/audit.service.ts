import type { ServiceKeys } from '../platform/auth/keys';
import { signJws } from '../platform/auth/signing';
import type { Db } from '../platform/db/database';
import { AppError } from '../platform/errors';
import { encodeCursor, keysetPage } from '../platform/pagination';
import type { ConsentEventKind, Outcome } from '../platform/vocabulary';
import * as repo from './audit.repository';
import type { AuditCheckpointRow } from './audit.table';
import type { AuditWriter } from './audit.writer';
import type { ChainedRecord } from './chain';
import type { AccountVerdict, DecisionHeader } from './decisions';
import { CHECKPOINT_TYP, type CheckpointPayload, type ExportFilters } from './formats';
import { proveConsistency, proveInclusion } from './proofs';
import { readRecords } from './record-reader';
import { type AuditDraft, type AuditRecord, type OmitEach, parseRecord, type StaffActionData } from './records';
import { type RollupCounts, type RollupRun, type RollupState, rollUp, rollupCounts, rollupState } from './rollups';
import { AuditTree } from './tree';

/** The consent component's public lookup of consent events by id (injected: audit does not import consent). */
export type ConsentEventLookup = (eventIds: readonly string[]) => Promise<readonly { readonly eventId: string }[]>;

/** An item of the webhook feed: a consent event, or an account's closure. */
export type WebhookFeedItem =
  | {
      readonly type: 'consent';
      readonly seq: number;
      readonly eventId: string;
      readonly accountId: string;
      readonly kind: ConsentEventKind;
      readonly purpose: string;
      readonly category: string;
      readonly occurredAt: string;
      readonly expiresAt?: string;
      readonly recipients?: readonly string[];
    }
  | { readonly type: 'account_closed'; readonly seq: number; readonly accountId: string; readonly occurredAt: string };

/** A stored record: what was hashed, parsed, with its links. */
export type AuditEventView = OmitEach<AuditRecord, 'recordedAt'> & {
  readonly recordedAt: Date;
  readonly prevHash: string;
  readonly hash: string;
  /** Format 3: the salt of the account commitment. */
  readonly accountSalt?: string;
  /** With `include=consents`, on decisions: the consent events they relied on. */
  readonly consents?: readonly unknown[];
};

/** The kinds of entries of an account's timeline: consent events, decisions, exports, console views. */
export const TIMELINE_KINDS = ['consent', 'decision', 'export', 'view'] as const;
export type TimelineKind = (typeof TIMELINE_KINDS)[number];
const TIMELINE_TYPES = {
  consent: 'consent_event',
  decision: 'decision',
  export: 'staff_action',
  view: 'staff_action',
} as const satisfies Record<TimelineKind, AuditRecord['type']>;

export interface TimelineQuery {
  readonly kinds?: readonly TimelineKind[];
  /** A purpose or exception id. */
  readonly purpose?: string;
  /** ISO 8601 times: recorded at or after `from`, before `to`. */
  readonly from?: string;
  readonly to?: string;
  readonly beforeSeq?: number;
  readonly limit: number;
}

export interface AuditDeps {
  readonly db: Db;
  readonly writer: AuditWriter;
  readonly keys: ServiceKeys;
  readonly clock: () => Date;
  readonly consentEvents: ConsentEventLookup;
}

export class AuditService {
  constructor(private readonly deps: AuditDeps) {}

  /** Group commit: resolves once the records are durable. Callers must not answer before. */
  record(drafts: readonly AuditDraft[]): Promise<void> {
    return this.deps.writer.append(drafts);
  }

  /** A decision call's records, one per account judged (group commit). Resolves once they are durable. */
  recordDecision(header: DecisionHeader, verdicts: readonly AccountVerdict[]): Promise<void> {
    return this.deps.writer.appendDecision(header, verdicts);
  }

  recordStaffAction(action: StaffActionData, accountId: string | null = null): Promise<void> {
    return this.deps.writer.append([{ type: 'staff_action', accountId, outcome: null, data: action }]);
  }

  /**
   * Records in sequence order. With `withConsents`, each decision carries the consent events it
   * relied on: "every allowed use of account X between T1 and T2, and the consent behind each" is one call.
   */
  async events(
    q: ExportFilters & {
      afterSeq?: number;
      /** Newest first (`order: 'desc'`), from before this seq. */
      beforeSeq?: number;
      order?: 'asc' | 'desc';
      limit: number;
      withConsents?: boolean;
    },
  ) {
    const page = await keysetPage(q.limit, (limit) => readRecords(this.deps.db, { ...q, limit }));
    let events = page.items.map(toView);
    if (q.withConsents) {
      const ids = new Set(events.flatMap(consentIdsOf));
      const found = new Map((await this.deps.consentEvents([...ids])).map((c) => [c.eventId, c] as const));
      events = events.map((e) =>
        e.type === 'decision'
          ? { ...e, consents: consentIdsOf(e).map((id) => found.get(id) ?? { eventId: id, missing: true }) }
          : e,
      );
    }
    return { events, nextCursor: page.next ? encodeCursor(page.next.seq) : null };
  }

  /**
   * The consent change feed, for pipelines that must purge data after a revocation. Ordered by
   * the chain's sequence number: appends are serialised by the head lock and commit in that order,
   * so a reader that has seen seq N has seen every consent event before it: polling with
   * `after` = the last seq seen never misses one.
   */
  async consentChanges(afterSeq: number, limit: number) {
    const rows = await repo.findPlainRecords(this.deps.db, { types: ['consent_event'], afterSeq, limit });
    const changes = rows.flatMap((row) => {
      const r = parseRecord(row.content);
      return r.type === 'consent_event' ? [{ ...changeOf(r), channel: r.data.channel }] : [];
    });
    return { changes, next: rows[rows.length - 1]?.seq ?? afterSeq };
  }

  /**
   * What webhooks announce, in chain order: consent events and account closures (the account import's record). The
   * same ordering argument as the change feed: a reader that has seen seq N has seen every record before it. `next`
   * is the last seq read (whatever its kind), so that a reader never reads a record twice.
   */
  async webhookFeed(afterSeq: number, limit: number): Promise<{ items: WebhookFeedItem[]; next: number }> {
    const rows = await repo.findPlainRecords(this.deps.db, {
      types: ['consent_event', 'staff_action'],
      afterSeq,
      limit,
    });
    const items = rows.flatMap((row): WebhookFeedItem[] => {
      const r = parseRecord(row.content);
      if (r.type === 'consent_event') return [{ type: 'consent', ...changeOf(r) }];
      if (
        r.type === 'staff_action' &&
        r.accountId &&
        r.data.action === 'account_changed' &&
        r.data.change === 'closed'
      ) {
        return [{ type: 'account_closed', seq: r.seq, accountId: r.accountId, occurredAt: r.recordedAt }];
      }
      return [];
    });
    return { items, next: rows[rows.length - 1]?.seq ?? afterSeq };
  }

  /**
   * The decisions about one account, newest first: what the subscriber sees as "who used my data". With `outcome`,
   * only the allowed or only the refused ones, filtered in the database (single and batch records alike, each table
   * walked along its (account_id, seq) index), so that a page is short only when it is the last.
   */
  async accountActivity(accountId: string, o: { beforeSeq?: number; outcome?: Outcome; limit: number }) {
    const { beforeSeq, outcome } = o;
    const page = await keysetPage(o.limit, (limit) =>
      readRecords(this.deps.db, { accountId, types: ['decision'], order: 'desc', beforeSeq, outcome, limit }),
    );
    return { events: page.items.map(toView), nextCursor: page.next ? encodeCursor(page.next.seq) : null };
  }

  /**
   * One account's timeline for the console, newest first: its consent events, the decisions about it, the exports
   * that named it and the console views of it (the `kinds` asked, all four by default). With `purpose`, only the
   * decisions and consent events for that purpose (exports and views have none). Filtered in the database along each
   * table's (account_id, seq) index, keyset-paged by seq: a page is short only when it is the last.
   */
  async accountTimeline(accountId: string, o: TimelineQuery) {
    const kinds = new Set(o.kinds?.length ? o.kinds : TIMELINE_KINDS);
    if (o.purpose !== undefined) {
      kinds.delete('export');
      kinds.delete('view');
    }
    const types = [...new Set([...kinds].map((k) => TIMELINE_TYPES[k]))];
    const staffActions = [...kinds].flatMap((k) =>
      k === 'export' ? ['export_requested'] : k === 'view' ? ['console_viewed'] : [],
    );
    if (!types.length) return { events: [] as AuditEventView[], nextCursor: null };
    const page = await keysetPage(o.limit, (limit) =>
      readRecords(this.deps.db, {
        accountId,
        types,
        staffActions,
        purpose: o.purpose,
        from: o.from,
        to: o.to,
        order: 'desc',
        beforeSeq: o.beforeSeq,
        limit,
      }),
    );
    return { events: page.items.map(toView), nextCursor: page.next ? encodeCursor(page.next.seq) : null };
  }

  /** The console's views of one account, newest first (at most `limit`): for the subscriber's activity page. */
  async accountViews(accountId: string, limit: number) {
    const rows = await readRecords(this.deps.db, {
      accountId,
      types: ['staff_action'],
      staffActions: ['console_viewed'],
      order: 'desc',
      limit,
    });
    return rows.flatMap((row) => {
      const r = parseRecord(row.content);
      if (r.type !== 'staff_action' || r.data.action !== 'console_viewed') return [];
      return [{ at: row.recordedAt, role: r.data.role, ...(r.data.reference ? { reference: r.data.reference } : {}) }];
    });
  }

  /** One record of the log, parsed, with its content as it was hashed; undefined when it is not online. */
  async recordAt(seq: number): Promise<{ view: AuditEventView; content: string } | undefined> {
    const [stored] = await readRecords(this.deps.db, { afterSeq: seq - 1, limit: 1 });
    if (!stored || stored.seq !== seq) return undefined;
    return { view: toView(stored), content: stored.content };
  }

  /** Signs tree heads (the job): see signTreeHeads. */
  /** Counts the log's new records into the charts' hourly counts (the audit-rollup job): one bounded step. */
  rollUp(step?: number): Promise<RollupRun | undefined> {
    return rollUp(this.deps.db, step);
  }

  /** How far the charts' counts go. */
  rollupState(): Promise<RollupState> {
    return rollupState(this.deps.db);
  }

  /** The charts' counts for records in [from, to): read from the hourly counts only, never the log. */
  rollupCounts(from: Date, to: Date): Promise<RollupCounts> {
    return rollupCounts(this.deps.db, from, to);
  }

  checkpoint(): Promise<CheckpointPayload | undefined> {
    return signTreeHeads(this.deps);
  }

  /**
   * For /metrics: records no signed tree head covers yet, and when the latest was signed. An idle log signs nothing
   * new, so the age alone is no alarm; unsigned records with an old signature are (the signing job is not running).
   */
  async signingState(): Promise<{ unsignedRecords: number; signedAt?: Date }> {
    const { headSeq, signedSeq, signedAt } = await repo.signingState(this.deps.db);
    return { unsignedRecords: Math.max(0, headSeq - signedSeq), signedAt };
  }

  async checkpoints(o: { beforeSeq?: number; limit: number }) {
    const page = await keysetPage(o.limit, (limit) => repo.findCheckpoints(this.deps.db, { ...o, limit }));
    return { checkpoints: page.items.map(checkpointView), nextCursor: page.next ? encodeCursor(page.next.seq) : null };
  }

  async treeHeads(o: { beforeSeq?: number; limit: number }) {
    const page = await keysetPage(o.limit, (limit) =>
      repo.findCheckpoints(this.deps.db, { ...o, limit, treeHeads: true }),
    );
    return { treeHeads: page.items.map(treeHeadView), nextCursor: page.next ? encodeCursor(page.next.seq) : null };
  }

  async latestTreeHead() {
    const head = await repo.findTreeHead(this.deps.db);
    if (!head) throw new AppError('not-found', 'No tree head has been signed yet.');
    return treeHeadView(head);
  }

  /**
   * Where consent events' records are in the log (their sequence numbers, in the order asked), and the latest signed
   * tree head, once it covers them all (within a signing interval of the change); undefined until then, or when a
   * record is not online (archived).
   */
  async consentEventsSigned(accountId: string, eventIds: readonly string[]) {
    const found = await repo.findConsentEventSeqs(this.deps.db, accountId, eventIds);
    const seqs = eventIds.map((id) => found.get(id));
    const head = await repo.findTreeHead(this.deps.db);
    if (!head || seqs.some((seq) => seq === undefined || seq > Number(head.seq))) return undefined;
    return { seqs: seqs as number[], treeSize: Number(head.seq), rootHash: head.root_hash!, treeHead: head.jws };
  }

  /**
   * The inclusion proofs of consent events' records against one signed tree head (the latest), for a receipt's proof
   * file; undefined until a tree head covers them all.
   */
  async consentEventProofs(accountId: string, eventIds: readonly string[]) {
    const signed = await this.consentEventsSigned(accountId, eventIds);
    if (!signed) return undefined;
    const proofs = [];
    for (const [i, seq] of signed.seqs.entries()) {
      const { record, leafIndex, treeSize, hashes, rootHash } = await proveInclusion(
        this.deps.db,
        seq,
        signed.treeSize,
      );
      proofs.push({ eventId: eventIds[i]!, record, leafIndex, treeSize, hashes, rootHash, treeHead: signed.treeHead });
    }
    return proofs;
  }

  /** See proofs.ts. */
  inclusionProof(seq: number, treeSize?: number) {
    return proveInclusion(this.deps.db, seq, treeSize);
  }

  consistencyProof(from: number, to?: number) {
    return proveConsistency(this.deps.db, from, to);
  }
}

/** A tree head at every multiple of this many records, besides the one per tick. */
const HEAD_EVERY = 10_000;

/**
 * Signs tree heads (the job, every `AUDIT_CHECKPOINT_INTERVAL_MS`; the archiver, for the head that
 * covers a month): one at each multiple of 10,000 records passed since the last, and one at the
 * current head unless it is signed already. The tree is extended first. Returns the newest, if one
 * was signed.
 */
export async function signTreeHeads(
  deps: Pick<AuditDeps, 'db' | 'keys' | 'clock'>,
): Promise<CheckpointPayload | undefined> {
  const { db, keys, clock } = deps;
  // Each tick keeps the indexes that page through the log summarized (see summarizeIndexes).
  await repo.summarizeIndexes(db);
  const head = await repo.readHead(db);
  if (head.seq === 0) return undefined;
  const signedThrough = Number((await repo.latestCheckpoint(db))?.seq ?? 0);
  if (signedThrough >= head.seq) return undefined;
  const tree = new AuditTree(db);
  await tree.extend(head.seq);
  const sign = async (size: number, hash?: string): Promise<CheckpointPayload | undefined> => {
    const chainHash = hash ?? (await readRecords(db, { afterSeq: size - 1, limit: 1 }))[0]?.hash;
    if (!chainHash) throw new Error(`audit: no record ${size} to sign`);
    const signedAt = clock();
    const payload: CheckpointPayload = {
      iss: 'optgate',
      seq: size,
      hash: chainHash,
      rootHash: (await tree.root(size)).toString('hex'),
      signedAt: signedAt.toISOString(),
    };
    const jws = await signJws(keys, payload, CHECKPOINT_TYP);
    const row = { seq: size, hash: chainHash, rootHash: payload.rootHash!, signedAt, kid: keys.signing.kid, jws };
    return (await repo.insertCheckpoint(db, row)) ? payload : undefined;
  };
  let payload: CheckpointPayload | undefined;
  for (let size = (Math.floor(signedThrough / HEAD_EVERY) + 1) * HEAD_EVERY; size < head.seq; size += HEAD_EVERY) {
    payload = await sign(size);
  }
  return (await sign(head.seq, head.hash)) ?? payload;
}

function toView(stored: ChainedRecord): AuditEventView {
  return {
    ...parseRecord(stored.content),
    recordedAt: stored.recordedAt,
    prevHash: stored.prevHash,
    hash: stored.hash,
    ...(stored.accountSalt ? { accountSalt: stored.accountSalt } : {}),
  };
}

function consentIdsOf(e: AuditEventView): string[] {
  if (e.type !== 'decision') return [];
  return e.data.results.flatMap((r) => (r.allow && r.consentId ? [r.consentId] : []));
}

const treeHeadView = (c: AuditCheckpointRow) => ({
  treeSize: Number(c.seq),
  rootHash: c.root_hash!,
  hash: c.hash,
  signedAt: c.signed_at,
  kid: c.kid,
  jws: c.jws,
});

const checkpointView = (c: AuditCheckpointRow) => ({
  seq: Number(c.seq),
  hash: c.hash,
  ...(c.root_hash ? { rootHash: c.root_hash } : {}),
  signedAt: c.signed_at,
  kid: c.kid,
  jws: c.jws,
});

/** A consent event as the change feed and webhooks give it: what a pipeline needs to act, no evidence. */
function changeOf(r: Extract<AuditRecord, { type: 'consent_event' }>) {
  const d = r.data;
  return {
    seq: r.seq,
    eventId: d.eventId,
    accountId: r.accountId,
    kind: d.kind,
    purpose: d.purpose,
    category: d.category,
    occurredAt: d.occurredAt,
    ...(d.expiresAt ? { expiresAt: d.expiresAt } : {}),
    ...(d.recipients ? { recipients: d.recipients } : {}),
  };
}
