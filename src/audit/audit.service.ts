import type { ServiceKeys } from '../platform/auth/keys';
import { signJws } from '../platform/auth/signing';
import type { Db } from '../platform/db/database';
import { encodeCursor, keysetPage } from '../platform/pagination';
import * as repo from './audit.repository';
import type { AuditCheckpointRow } from './audit.table';
import type { AuditWriter } from './audit.writer';
import type { ChainedRecord } from './chain';
import type { AccountVerdict, DecisionHeader } from './decisions';
import { CHECKPOINT_TYP, type CheckpointPayload, type ExportFilters } from './formats';
import { readRecords } from './record-reader';
import { type AuditDraft, type AuditRecord, type OmitEach, parseRecord, type StaffActionData } from './records';

/** The consent component's public lookup of consent events by id (injected: audit does not import consent). */
export type ConsentEventLookup = (eventIds: readonly string[]) => Promise<readonly { readonly eventId: string }[]>;

/** A stored record: what was hashed, parsed, with its links. */
export type AuditEventView = OmitEach<AuditRecord, 'recordedAt'> & {
  readonly recordedAt: Date;
  readonly prevHash: string;
  readonly hash: string;
  /** With `include=consents`, on decisions: the consent events they relied on. */
  readonly consents?: readonly unknown[];
};

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
  async events(q: ExportFilters & { afterSeq?: number; limit: number; withConsents?: boolean }) {
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
      if (r.type !== 'consent_event') return [];
      const d = r.data;
      return [
        {
          seq: r.seq,
          eventId: d.eventId,
          accountId: r.accountId,
          kind: d.kind,
          purpose: d.purpose,
          category: d.category,
          channel: d.channel,
          occurredAt: d.occurredAt,
          ...(d.expiresAt ? { expiresAt: d.expiresAt } : {}),
        },
      ];
    });
    return { changes, next: rows[rows.length - 1]?.seq ?? afterSeq };
  }

  /** The decisions about one account, newest first: what the subscriber sees as "who used my data". */
  async accountActivity(accountId: string, o: { beforeSeq?: number; limit: number }) {
    const page = await keysetPage(o.limit, (limit) =>
      readRecords(this.deps.db, { accountId, types: ['decision'], order: 'desc', beforeSeq: o.beforeSeq, limit }),
    );
    return { events: page.items.map(toView), nextCursor: page.next ? encodeCursor(page.next.seq) : null };
  }

  /** Signs the current chain head, unless it is already signed. Returns the checkpoint, new or existing. */
  async checkpoint(): Promise<CheckpointPayload | undefined> {
    const { db, keys } = this.deps;
    // Each tick keeps the indexes that page through the log summarized (see summarizeIndexes).
    await repo.summarizeIndexes(db);
    const head = await repo.readHead(db);
    if (head.seq === 0) return undefined;
    const signedAt = this.deps.clock();
    const payload: CheckpointPayload = {
      iss: 'optgate',
      seq: head.seq,
      hash: head.hash,
      signedAt: signedAt.toISOString(),
    };
    const jws = await signJws(keys, payload, CHECKPOINT_TYP);
    await repo.insertCheckpoint(db, { seq: head.seq, hash: head.hash, signedAt, kid: keys.signing.kid, jws });
    return payload;
  }

  async checkpoints(o: { beforeSeq?: number; limit: number }) {
    const page = await keysetPage(o.limit, (limit) => repo.findCheckpoints(this.deps.db, { ...o, limit }));
    return { checkpoints: page.items.map(checkpointView), nextCursor: page.next ? encodeCursor(page.next.seq) : null };
  }
}

function toView(stored: ChainedRecord): AuditEventView {
  return {
    ...parseRecord(stored.content),
    recordedAt: stored.recordedAt,
    prevHash: stored.prevHash,
    hash: stored.hash,
  };
}

function consentIdsOf(e: AuditEventView): string[] {
  if (e.type !== 'decision') return [];
  return e.data.results.flatMap((r) => (r.allow && r.consentId ? [r.consentId] : []));
}

const checkpointView = (c: AuditCheckpointRow) => ({
  seq: Number(c.seq),
  hash: c.hash,
  signedAt: c.signed_at,
  kid: c.kid,
  jws: c.jws,
});
