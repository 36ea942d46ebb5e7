import { createHmac, randomUUID } from 'node:crypto';
import { requireAccount, requireAccountForUpdate } from '../accounts/account.service';
import { appendInTransaction } from '../audit/audit.writer';
import type { AuditDraft } from '../audit/chain';
import type { Catalog } from '../platform/config/catalog';
import type { Db } from '../platform/db/database';
import { type FieldProblem, validationError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import * as repo from './consent.repository';
import type {
  ActorType,
  Channel,
  ConsentEventKind,
  ConsentEventRow,
  ConsentStateRow,
  ConsentStateValue,
} from './consent.table';

export type Choice = 'grant' | 'revoke' | 'opt_out' | 'withdraw_opt_out';

export interface ConsentChange {
  readonly purpose: string;
  readonly category: string;
  readonly choice: Choice;
  readonly expiresAt?: Date;
}

export interface ChangeSet {
  readonly channel: Exclude<Channel, 'system'>;
  readonly actor: { readonly type: Exclude<ActorType, 'system'>; readonly id?: string };
  readonly noticeVersion: string;
  /** The subscriber performed an explicit act of agreement: required for every grant. */
  readonly affirmative: boolean;
  readonly changes: readonly ConsentChange[];
}

/** Where a change came from. IP address and user agent are kept only as keyed hashes. */
export interface Provenance {
  readonly clientId: string | null;
  readonly requestId: string;
  readonly ip?: string;
  readonly userAgent?: string;
}

export interface ConsentView {
  readonly purpose: string;
  readonly category: string;
  readonly state: ConsentStateValue;
  readonly consentId: string;
  readonly noticeVersion: string;
  readonly grantedAt?: Date;
  readonly expiresAt?: Date;
  readonly revokedAt?: Date;
  readonly updatedAt: Date;
}

export interface ConsentEventView {
  readonly eventId: string;
  readonly seq: string;
  readonly accountId: string;
  readonly kind: ConsentEventKind;
  readonly purpose: string;
  readonly category: string;
  readonly channel: Channel;
  readonly actorType: ActorType;
  readonly actorId?: string;
  readonly noticeVersion: string;
  readonly noticeSha256: string;
  readonly occurredAt: Date;
  readonly expiresAt?: Date;
}

export interface RecordedEvent {
  readonly eventId: string;
  readonly seq: string;
  readonly purpose: string;
  readonly category: string;
  readonly kind: ConsentEventKind;
  readonly occurredAt: Date;
  readonly expiresAt?: Date;
}

export interface ConsentDeps {
  readonly db: Db;
  readonly catalog: Catalog;
  readonly clock: () => Date;
  readonly evidenceKey: Buffer;
  readonly metrics: Metrics;
}

const DAY_MS = 86_400_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class ConsentService {
  constructor(private readonly deps: ConsentDeps) {}

  /**
   * The current state per purpose × category; a grant past its expiry reads as expired even before the sweep marks it.
   */
  async currentState(accountId: string): Promise<ConsentView[]> {
    const { db } = this.deps;
    await requireAccount(db, accountId);
    const now = this.deps.clock();
    return (await repo.findStates(db, accountId)).map((row) => toView(row, now));
  }

  /** Consent events by id, as the audit cites them. */
  async eventsByIds(eventIds: readonly string[]): Promise<ConsentEventView[]> {
    return (
      await repo.findEventsByIds(
        this.deps.db,
        eventIds.filter((id) => UUID.test(id)),
      )
    ).map(eventView);
  }

  /** One account's history, newest first; `before` is the feed position of the last event of the previous page. */
  async history(accountId: string, o: { before?: string; limit: number }): Promise<ConsentEventView[]> {
    const beforeId = o.before && /^\d{1,19}$/.test(o.before) ? o.before : undefined;
    return (await repo.findAccountEvents(this.deps.db, accountId, { beforeId, limit: o.limit })).map(eventView);
  }

  /**
   * Records a set of changes atomically: all of them, or none. Each change appends one event
   * and updates the derived state in the same transaction, under a per-account lock, so that
   * concurrent channels cannot interleave.
   */
  async record(
    accountId: string,
    set: ChangeSet,
    provenance: Provenance,
  ): Promise<{ events: RecordedEvent[]; consents: ConsentView[] }> {
    const now = this.deps.clock();
    this.validate(set, now);
    const notice = this.deps.catalog.noticesByVersion.get(set.noticeVersion)!;
    const evidence = {
      request_id: provenance.requestId,
      ip_hash: provenance.ip ? this.hash(provenance.ip) : null,
      user_agent_hash: provenance.userAgent ? this.hash(provenance.userAgent) : null,
    };

    const { events, states } = await this.deps.db.transaction().execute(async (trx) => {
      await requireAccountForUpdate(trx, accountId);
      await repo.lockAccountConsents(trx, accountId);
      const current = new Map(
        (await repo.findStates(trx, accountId)).map((s) => [key(s.purpose, s.category), s] as const),
      );
      const newEvents: repo.NewConsentEvent[] = [];
      const next = new Map<string, ConsentStateRow>();
      for (const change of set.changes) {
        const k = key(change.purpose, change.category);
        const before = next.get(k) ?? current.get(k);
        const { kind, state } = transition(change.choice, before, now);
        const eventId = randomUUID();
        const expiresAt =
          change.choice === 'grant'
            ? (change.expiresAt ?? new Date(now.getTime() + this.deps.catalog.consentTermDays * DAY_MS))
            : null;
        newEvents.push({
          event_id: eventId,
          account_id: accountId,
          purpose: change.purpose,
          category: change.category,
          kind,
          actor_type: set.actor.type,
          actor_id: set.actor.id ?? null,
          channel: set.channel,
          client_id: provenance.clientId,
          notice_version: notice.version,
          notice_sha256: notice.sha256,
          occurred_at: now,
          expires_at: expiresAt,
          ...evidence,
        });
        next.set(k, {
          account_id: accountId,
          purpose: change.purpose,
          category: change.category,
          state,
          consent_id: eventId,
          notice_version: notice.version,
          granted_at: state === 'granted' ? now : (before?.granted_at ?? null),
          expires_at: state === 'granted' ? expiresAt : (before?.expires_at ?? null),
          revoked_at: state === 'revoked' ? now : null,
          updated_at: now,
          last_event_id: '0',
        });
      }
      const seqs = await repo.insertEvents(trx, newEvents);
      await appendInTransaction(trx, newEvents.map(auditDraft), now);
      const lastSeq = new Map(newEvents.map((e, i) => [key(e.purpose, e.category), seqs[i]!] as const));
      const states = [...next.values()].map((s) => ({ ...s, last_event_id: lastSeq.get(key(s.purpose, s.category))! }));
      await repo.upsertStates(trx, states);
      return { events: newEvents.map((e, i) => ({ ...e, seq: seqs[i]! })), states };
    });

    for (const e of events) this.deps.metrics.consentEvents.inc({ kind: e.kind, channel: e.channel });
    return {
      events: events.map((e) => ({
        eventId: e.event_id,
        seq: e.seq,
        purpose: e.purpose,
        category: e.category,
        kind: e.kind,
        occurredAt: e.occurred_at,
        ...(e.expires_at ? { expiresAt: e.expires_at } : {}),
      })),
      consents: states.map((s) => toView(s, now)),
    };
  }

  /**
   * Appends an `expired` event for each grant whose term has run out. Decisions never wait for
   * this (they compare expiresAt with the clock); it makes the expiry visible in the history and
   * the change feed. Safe to run on several instances at once: rows are claimed with SKIP LOCKED.
   */
  async markExpired(batchSize = 500): Promise<number> {
    let total = 0;
    for (;;) {
      const now = this.deps.clock();
      const count = await this.deps.db.transaction().execute(async (trx) => {
        const overdue = await repo.lockOverdueGrants(trx, now, batchSize);
        const events: repo.NewConsentEvent[] = overdue.map((s) => ({
          event_id: randomUUID(),
          account_id: s.account_id,
          purpose: s.purpose,
          category: s.category,
          kind: 'expired',
          actor_type: 'system',
          actor_id: null,
          channel: 'system',
          client_id: null,
          notice_version: s.notice_version,
          notice_sha256: this.deps.catalog.noticesByVersion.get(s.notice_version)?.sha256 ?? 'unknown',
          occurred_at: now,
          expires_at: s.expires_at,
          request_id: null,
          ip_hash: null,
          user_agent_hash: null,
        }));
        const seqs = await repo.insertEvents(trx, events);
        await appendInTransaction(trx, events.map(auditDraft), now);
        await repo.upsertStates(
          trx,
          overdue.map((s, i) => ({
            ...s,
            state: 'expired',
            consent_id: events[i]!.event_id,
            updated_at: now,
            last_event_id: seqs[i]!,
          })),
        );
        return overdue.length;
      });
      total += count;
      if (count) this.deps.metrics.consentEvents.inc({ kind: 'expired', channel: 'system' }, count);
      if (count < batchSize) return total;
    }
  }

  /** Every check against the catalog, reported together. */
  private validate(set: ChangeSet, now: Date): void {
    const { catalog } = this.deps;
    const problems: FieldProblem[] = [];
    const notice = catalog.noticesByVersion.get(set.noticeVersion);
    if (!notice) problems.push({ path: 'noticeVersion', message: 'unknown notice version' });
    else if (notice.effectiveAt > now)
      problems.push({ path: 'noticeVersion', message: 'this notice version is not in effect yet' });
    const maxExpiry = now.getTime() + catalog.maxConsentTermDays * DAY_MS;
    set.changes.forEach((c, i) => {
      const at = (field: string, message: string) => problems.push({ path: `changes.${i}.${field}`, message });
      const category = catalog.categories.get(c.category);
      if (catalog.exceptions.has(c.purpose))
        at('purpose', 'this purpose is a statutory exception: it needs no consent');
      else if (!catalog.purposes.has(c.purpose)) at('purpose', 'unknown purpose');
      if (!category) at('category', 'unknown category');
      else if (category.regime === 'opt_in' && (c.choice === 'opt_out' || c.choice === 'withdraw_opt_out')) {
        at('choice', 'this category needs an opt-in: use grant or revoke');
      } else if (category.regime === 'opt_out' && (c.choice === 'grant' || c.choice === 'revoke')) {
        at('choice', 'this category is used unless opted out: use opt_out or withdraw_opt_out');
      }
      if (c.choice === 'grant' && !set.affirmative)
        at('choice', 'a grant needs an express, affirmative act: send affirmative: true');
      if (c.expiresAt && c.choice !== 'grant') at('expiresAt', 'only a grant has an expiry');
      if (c.expiresAt && c.expiresAt.getTime() <= now.getTime()) at('expiresAt', 'must be in the future');
      if (c.expiresAt && c.expiresAt.getTime() > maxExpiry)
        at('expiresAt', `must be within ${catalog.maxConsentTermDays} days`);
    });
    if (problems.length) throw validationError(problems);
  }

  private hash(value: string): string {
    return createHmac('sha256', this.deps.evidenceKey).update(value).digest('hex');
  }
}

/** The audit record of a consent event: committed in the same transaction as the event. */
function auditDraft(e: repo.NewConsentEvent): AuditDraft {
  return {
    type: 'consent_event',
    accountId: e.account_id,
    outcome: null,
    data: {
      eventId: e.event_id,
      kind: e.kind,
      purpose: e.purpose,
      category: e.category,
      channel: e.channel,
      actorType: e.actor_type,
      actorId: e.actor_id ?? undefined,
      clientId: e.client_id ?? undefined,
      noticeVersion: e.notice_version,
      noticeSha256: e.notice_sha256,
      occurredAt: e.occurred_at.toISOString(),
      expiresAt: e.expires_at?.toISOString(),
      requestId: e.request_id ?? undefined,
      ipHash: e.ip_hash ?? undefined,
      userAgentHash: e.user_agent_hash ?? undefined,
    },
  };
}

const key = (purpose: string, category: string) => `${purpose}\u0000${category}`;

/** What a choice does to the current state, and the event that records it. */
function transition(
  choice: Choice,
  before: ConsentStateRow | undefined,
  now: Date,
): { kind: ConsentEventKind; state: ConsentStateValue } {
  const active = before?.state === 'granted' && before.expires_at !== null && now < before.expires_at;
  switch (choice) {
    case 'grant':
      return { kind: active ? 'renewed' : 'granted', state: 'granted' };
    case 'revoke': {
      // Saying no without ever having said yes is a decline; after a grant (even a lapsed one) it is a revocation.
      const everGranted = before !== undefined && before.state !== 'declined';
      return everGranted ? { kind: 'revoked', state: 'revoked' } : { kind: 'declined', state: 'declined' };
    }
    case 'opt_out':
      return { kind: 'opted_out', state: 'opted_out' };
    case 'withdraw_opt_out':
      return { kind: 'opt_out_withdrawn', state: 'not_opted_out' };
  }
}

function eventView(e: ConsentEventRow): ConsentEventView {
  return {
    eventId: e.event_id,
    seq: e.id,
    accountId: e.account_id,
    kind: e.kind,
    purpose: e.purpose,
    category: e.category,
    channel: e.channel,
    actorType: e.actor_type,
    ...(e.actor_id ? { actorId: e.actor_id } : {}),
    noticeVersion: e.notice_version,
    noticeSha256: e.notice_sha256,
    occurredAt: e.occurred_at,
    ...(e.expires_at ? { expiresAt: e.expires_at } : {}),
  };
}

function toView(row: ConsentStateRow, now: Date): ConsentView {
  const lapsed = row.state === 'granted' && (!row.expires_at || now >= row.expires_at);
  return {
    purpose: row.purpose,
    category: row.category,
    state: lapsed ? 'expired' : row.state,
    consentId: row.consent_id,
    noticeVersion: row.notice_version,
    ...(row.granted_at ? { grantedAt: row.granted_at } : {}),
    ...(row.expires_at ? { expiresAt: row.expires_at } : {}),
    ...(row.revoked_at ? { revokedAt: row.revoked_at } : {}),
    updatedAt: row.updated_at,
  };
}
