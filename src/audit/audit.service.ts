import type { ServiceKeys } from '../platform/auth/keys';
import { signJws } from '../platform/auth/signing';
import type { Db } from '../platform/db/database';
import { AppError } from '../platform/errors';
import * as repo from './audit.repository';
import type { AuditCheckpointRow, AuditRecordRow, ExportFilters } from './audit.table';
import type { AuditWriter } from './audit.writer';
import type { AuditDraft, Json } from './chain';

export const CHECKPOINT_TYP = 'optgate-checkpoint+jws';

export interface CheckpointPayload {
  readonly iss: 'optgate';
  readonly seq: number;
  readonly hash: string;
  readonly signedAt: string;
}

/** The consent component's public lookup of consent events by id. */
export type ConsentEventLookup = (eventIds: readonly string[]) => Promise<readonly { readonly eventId: string }[]>;

export interface AuditEventView {
  readonly seq: number;
  readonly recordedAt: Date;
  readonly type: string;
  readonly accountId: string | null;
  readonly outcome: string | null;
  readonly data: Json;
  readonly prevHash: string;
  readonly hash: string;
  readonly consents?: readonly unknown[];
}

export interface StaffAction {
  /** Who acted: a token subject, or the operating-system user running the CLI. */
  readonly actor: string;
  readonly action: 'export_requested';
  readonly details: { readonly [key: string]: Json | undefined };
  readonly accountId?: string;
}

export class AuditService {
  constructor(
    private readonly db: Db,
    private readonly writer: AuditWriter,
    private readonly keys: ServiceKeys,
    private readonly clock: () => Date,
    private readonly consentEvents: ConsentEventLookup,
  ) {}

  /** Resolves once the records are durable. Callers must not answer before. */
  record(drafts: readonly AuditDraft[]): Promise<void> {
    return this.writer.append(drafts);
  }

  recordStaffAction(a: StaffAction): Promise<void> {
    return this.writer.append([
      {
        type: 'staff_action',
        accountId: a.accountId ?? null,
        outcome: null,
        data: { action: a.action, actor: a.actor, ...a.details },
      },
    ]);
  }

  /**
   * Records in sequence order. With `withConsents`, each decision carries the consent events it
   * relied on: "every allowed use of account X between T1 and T2, and the consent behind each" is one call.
   */
  async events(
    q: ExportFilters & { afterSeq?: number; limit: number; withConsents?: boolean },
  ): Promise<{ events: AuditEventView[]; nextCursor: string | null }> {
    const rows = await repo.findRecords(this.db, { ...q, limit: q.limit + 1 });
    const more = rows.length > q.limit;
    if (more) rows.pop();
    let events = rows.map(toView);
    if (q.withConsents) {
      const ids = new Set(events.flatMap(consentIdsOf));
      const found = new Map((await this.consentEvents([...ids])).map((c) => [c.eventId, c] as const));
      events = events.map((e) =>
        e.type === 'decision'
          ? { ...e, consents: consentIdsOf(e).map((id) => found.get(id) ?? { eventId: id, missing: true }) }
          : e,
      );
    }
    return { events, nextCursor: more ? encodeCursor(Number(rows[rows.length - 1]!.seq)) : null };
  }

  /**
   * The consent change feed, for pipelines that must purge data after a revocation. Ordered by
   * the chain's sequence number: appends are serialised by the head lock and commit in that order,
   * so a reader that has seen seq N has seen every consent event before it: polling with
   * `after` = the last seq seen never misses one.
   */
  async consentChanges(afterSeq: number, limit: number) {
    const rows = await repo.findRecords(this.db, { types: ['consent_event'], afterSeq, limit });
    const changes = rows.map((r) => {
      const d = (JSON.parse(r.content) as { data: Record<string, string> }).data;
      return {
        seq: Number(r.seq),
        eventId: d.eventId,
        accountId: r.account_id,
        kind: d.kind,
        purpose: d.purpose,
        category: d.category,
        channel: d.channel,
        occurredAt: d.occurredAt,
        ...(d.expiresAt ? { expiresAt: d.expiresAt } : {}),
      };
    });
    return { changes, next: changes.length ? changes[changes.length - 1]!.seq : afterSeq };
  }

  /** The decisions about one account, newest first: what the subscriber sees as "who used my data". */
  async accountActivity(
    accountId: string,
    o: { beforeSeq?: number; limit: number },
  ): Promise<{ events: AuditEventView[]; nextCursor: string | null }> {
    const rows = await repo.findAccountRecordsDesc(this.db, accountId, 'decision', { ...o, limit: o.limit + 1 });
    const more = rows.length > o.limit;
    if (more) rows.pop();
    return { events: rows.map(toView), nextCursor: more ? encodeCursor(Number(rows[rows.length - 1]!.seq)) : null };
  }

  /** Signs the current chain head, unless it is already signed. Returns the checkpoint, new or existing. */
  async checkpoint(): Promise<CheckpointPayload | undefined> {
    const head = await repo.readHead(this.db);
    if (head.seq === 0) return undefined;
    const signedAt = this.clock();
    const payload: CheckpointPayload = {
      iss: 'optgate',
      seq: head.seq,
      hash: head.hash,
      signedAt: signedAt.toISOString(),
    };
    const jws = await signJws(this.keys, payload, CHECKPOINT_TYP);
    await repo.insertCheckpoint(this.db, { seq: head.seq, hash: head.hash, signedAt, kid: this.keys.signing.kid, jws });
    return payload;
  }

  async checkpoints(o: {
    beforeSeq?: number;
    limit: number;
  }): Promise<{ checkpoints: ReturnType<typeof checkpointView>[]; nextCursor: string | null }> {
    const rows = await repo.findCheckpoints(this.db, { ...o, limit: o.limit + 1 });
    const more = rows.length > o.limit;
    if (more) rows.pop();
    return {
      checkpoints: rows.map(checkpointView),
      nextCursor: more ? encodeCursor(Number(rows[rows.length - 1]!.seq)) : null,
    };
  }
}

function toView(r: AuditRecordRow): AuditEventView {
  const content = JSON.parse(r.content) as { data: Json };
  return {
    seq: Number(r.seq),
    recordedAt: r.recorded_at,
    type: r.type,
    accountId: r.account_id,
    outcome: r.outcome,
    data: content.data,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

function consentIdsOf(e: AuditEventView): string[] {
  if (e.type !== 'decision') return [];
  const results = (e.data as { results?: { consentId?: string }[] }).results ?? [];
  return results.flatMap((r) => (r.consentId ? [r.consentId] : []));
}

const checkpointView = (c: AuditCheckpointRow) => ({
  seq: Number(c.seq),
  hash: c.hash,
  signedAt: c.signed_at,
  kid: c.kid,
  jws: c.jws,
});

/** Cursors are opaque to callers: a sequence number, base64url-encoded. */
export const encodeCursor = (seq: number) => Buffer.from(`seq:${seq}`).toString('base64url');

export function decodeCursor(cursor: string): number {
  const m = /^seq:(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m)
    throw new AppError('validation', 'The cursor is not one this service issued.', [
      { path: 'cursor', message: 'invalid cursor' },
    ]);
  return Number(m[1]);
}
