import { createHmac, randomUUID } from 'node:crypto';
import type { AccountService } from '../accounts';
import { appendWithin, consentEventRecord, RECEIPT_TYP } from '../audit';
import { type CacheCoherence, recordChanges } from '../cache';
import type { ServiceKeys } from '../platform/auth/keys';
import { signJws } from '../platform/auth/signing';
import type { Catalog, Notice } from '../platform/config/catalog';
import type { Db } from '../platform/db/database';
import { AppError, type FieldProblem, validationError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import type { ActorType, Channel, ConsentEventKind, ConsentState, VerificationMethod } from '../platform/vocabulary';
import * as repo from './consent.repository';
import type { ConsentEventRow, ConsentReceiptRow, ConsentStateRow } from './consent.table';
import {
  payloadBytesOf,
  type ReceiptAct,
  type ReceiptPayload,
  type ReceiptSettings,
  receiptPayload,
  receiptPayloadSchema,
} from './receipt';

export type Choice = 'grant' | 'revoke' | 'opt_out' | 'withdraw_opt_out';

export interface ConsentChange {
  readonly purpose: string;
  readonly category: string;
  readonly choice: Choice;
  readonly expiresAt?: Date;
  /**
   * A grant for a purpose that names its recipients (sale, disclosure, access in place): the registry ids it covers.
   * Absent: every recipient of an allowed kind in the registry now (recorded by name, so that one added later is not
   * covered).
   */
  readonly recipients?: readonly string[];
}

export interface ChangeSet {
  readonly channel: Exclude<Channel, 'system'>;
  readonly actor: { readonly type: Exclude<ActorType, 'system'>; readonly id?: string };
  readonly noticeVersion: string;
  /** Staff acting on the subscriber's word: how they verified who they spoke to (required for staff). */
  readonly verification?: VerificationMethod;
  /** Staff acting on the subscriber's word: the call or ticket id (required for staff). */
  readonly reference?: string;
  /**
   * The portal's Global Privacy Control: `present`, the subscriber acted while their browser sent it (recorded on the
   * events); `claim`, the signal is honoured as a standing opt-out, once per account: the changes are recorded only if
   * this is the first time (in the same transaction as `accounts.gpc_at`).
   */
  readonly gpc?: 'present' | 'claim';
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
  /** The language the subscriber used (the portal's): the receipt says it. Absent: English. */
  readonly language?: string;
}

/** A state as shown: `superseded` is a grant given under a notice that a later material change replaced. */
export type ConsentViewState = ConsentState | 'superseded';

export interface ConsentView {
  readonly purpose: string;
  readonly category: string;
  readonly state: ConsentViewState;
  readonly consentId: string;
  readonly noticeVersion: string;
  readonly grantedAt?: Date;
  readonly expiresAt?: Date;
  readonly revokedAt?: Date;
  readonly updatedAt: Date;
  readonly recipients?: readonly string[];
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
  readonly recipients?: readonly string[];
  readonly verification?: VerificationMethod;
  readonly reference?: string;
  /** Made in the portal while the browser sent Global Privacy Control. */
  readonly underGpc?: boolean;
  /** The receipt of the act that recorded it; absent for the system's events and those recorded before receipts. */
  readonly receiptId?: string;
}

/** One entry of the history: an act (all the events of one receipt, in the order recorded), or a system event. */
export interface HistoryEntry {
  /** The receipt to show: the act's, or, for an event without one, its own (made when first asked for). */
  readonly receiptId: string;
  readonly occurredAt: Date;
  readonly channel: Channel;
  readonly actorType: ActorType;
  readonly actorId?: string;
  readonly events: readonly ConsentEventView[];
}

/** A receipt as stored: the JWS as signed, and its payload (`payloadJson`: the signed bytes). */
export interface StoredReceipt {
  readonly receiptId: string;
  readonly accountId: string;
  readonly recordedAt: Date;
  readonly eventIds: readonly string[];
  readonly jws: string;
  readonly payloadJson: string;
  readonly payload: ReceiptPayload;
}

export interface RecordedEvent {
  readonly eventId: string;
  readonly seq: string;
  readonly purpose: string;
  readonly category: string;
  readonly kind: ConsentEventKind;
  readonly occurredAt: Date;
  readonly expiresAt?: Date;
  readonly recipients?: readonly string[];
  /** The act's receipt, which lists every event of the act. */
  readonly receiptId: string;
  /** The portal page of the act's signed receipt, which the call centre can send the subscriber. */
  readonly receiptUrl: string;
}

export interface ConsentDeps {
  readonly db: Db;
  readonly catalog: Catalog;
  readonly clock: () => Date;
  readonly evidenceKey: Buffer;
  readonly metrics: Metrics;
  readonly accounts: AccountService;
  /** Every instance's cache drops the accounts a change touched, before the change is answered. */
  readonly coherence: Pick<CacheCoherence, 'announce'>;
  /** Signs each act's receipt (the service key). */
  readonly keys: ServiceKeys;
  /** What receipts say about the controller, and how to withdraw. */
  readonly receipts: ReceiptSettings;
  /** Where the portal shows a receipt. */
  readonly receiptUrl: (receiptId: string) => string;
}

/** One change about to be committed: its event, and the state it leaves (the feed id is known after the insert). */
interface Planned {
  readonly event: repo.NewConsentEvent;
  readonly state: Omit<ConsentStateRow, 'last_event_id'>;
}

const DAY_MS = 86_400_000;
/** Events read at a time while gathering a page of the history. */
const HISTORY_CHUNK = 200;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A grant in force whose term ends soon: its consent id (the granted or renewed event) and what it covers. */
export interface ExpiringGrant {
  readonly consentId: string;
  readonly accountId: string;
  readonly purpose: string;
  readonly category: string;
  readonly expiresAt: string;
  readonly recipients?: readonly string[];
}

export class ConsentService {
  constructor(private readonly deps: ConsentDeps) {}

  /** The current state per purpose × category; a grant past its expiry reads as expired before the sweep marks it. */
  async currentState(accountId: string): Promise<ConsentView[]> {
    await this.deps.accounts.require(accountId);
    const now = this.deps.clock();
    return (await repo.findStates(this.deps.db, accountId)).map((row) => this.view(row, now));
  }

  /** Consent events by id, as the audit cites them. */
  async eventsByIds(eventIds: readonly string[]): Promise<ConsentEventView[]> {
    const ids = eventIds.filter((id) => UUID.test(id));
    return (await repo.findEventsByIds(this.deps.db, ids)).map(eventView);
  }

  /**
   * Grants in force whose term ends within `withinMs` from now, in expiry order, a page at a time (`after`: the last
   * one of the previous page). For the webhooks' `consent.expiring`.
   */
  async grantsExpiring(withinMs: number, limit: number, after?: ExpiringGrant): Promise<ExpiringGrant[]> {
    const now = this.deps.clock();
    const until = new Date(now.getTime() + withinMs);
    const keyset = after && { expiresAt: new Date(after.expiresAt), consentId: after.consentId };
    const rows = await repo.findGrantsExpiring(this.deps.db, { now, until, after: keyset, limit });
    return rows.map((r) => ({
      consentId: r.consent_id,
      accountId: r.account_id,
      purpose: r.purpose,
      category: r.category,
      expiresAt: r.expires_at!.toISOString(),
      ...(r.recipients ? { recipients: r.recipients } : {}),
    }));
  }

  /** The consent choices of these accounts made in [from, to] (by the subscriber or staff; not expiries or lapses). */
  async choicesBetween(accountIds: readonly string[], from: Date, to: Date): Promise<ConsentEventView[]> {
    return (await repo.findChoices(this.deps.db, accountIds, from, to)).map(eventView);
  }

  /**
   * One account's history, newest first, `limit` entries a page: one per act (its events in the order recorded), one
   * per event without a receipt of its own act (the system's, and those recorded before receipts). `before` is the
   * `next` of the previous page. An act's events are consecutive in an account's history (one insert, under the
   * account's lock), so a page never splits one: it ends where an act begins.
   */
  async history(
    accountId: string,
    o: { before?: string; limit: number },
  ): Promise<{ entries: HistoryEntry[]; next: string | null }> {
    let beforeId = o.before && /^\d{1,19}$/.test(o.before) ? o.before : undefined;
    const acts: ConsentEventView[][] = [];
    for (;;) {
      const rows = await repo.findAccountEvents(this.deps.db, accountId, { beforeId, limit: HISTORY_CHUNK });
      for (const e of rows.map(eventView)) {
        const last = acts.at(-1);
        if (last && actOf(last[0]!) === actOf(e)) last.push(e);
        else acts.push([e]);
      }
      // One more act than the page shows: the last one shown is then complete.
      if (acts.length > o.limit || rows.length < HISTORY_CHUNK) break;
      beforeId = rows.at(-1)!.id;
    }
    const page = acts.slice(0, o.limit);
    const entries = page.map((newestFirst): HistoryEntry => {
      const events = [...newestFirst].reverse();
      const { occurredAt, channel, actorType, actorId } = events[0]!;
      return { receiptId: actOf(events[0]!), occurredAt, channel, actorType, ...(actorId ? { actorId } : {}), events };
    });
    return { entries, next: acts.length > o.limit ? page.at(-1)!.at(-1)!.seq : null };
  }

  /**
   * A receipt of this account, by its id. For the id of an event of an act: `moved` names the act's receipt. An event
   * without one (recorded before receipts were kept, or by the system) gets its own on first request, with the event's
   * id, stored so that every later request, and a concurrent first one, returns the same bytes. Another account's
   * receipt or event is not found.
   */
  async receipt(accountId: string, id: string): Promise<StoredReceipt | { moved: string }> {
    const notFound = () => new AppError('not-found', 'No such receipt.');
    if (!UUID.test(id)) throw notFound();
    const stored = await repo.findReceipt(this.deps.db, id);
    if (stored) {
      if (stored.account_id !== accountId) throw notFound();
      return storedReceipt(stored);
    }
    const [event] = await repo.findEventsByIds(this.deps.db, [id]);
    if (!event || event.account_id !== accountId) throw notFound();
    if (event.receipt_id) return { moved: event.receipt_id };
    const act: ReceiptAct = {
      receiptId: event.event_id,
      accountId,
      recordedAt: event.occurred_at,
      language: 'en',
      channel: event.channel,
      actor: { type: event.actor_type, ...(event.actor_id ? { id: event.actor_id } : {}) },
      ...(event.verification ? { verification: event.verification } : {}),
      ...(event.reference ? { reference: event.reference } : {}),
      // The GPC signal honoured is the actor itself; underGpc is for a choice made while the signal was sent.
      underGpc: event.under_gpc && event.actor_id !== 'gpc',
      notice: { version: event.notice_version, sha256: event.notice_sha256 },
      events: [
        {
          eventId: event.event_id,
          purpose: event.purpose,
          category: event.category,
          kind: event.kind,
          ...(event.expires_at ? { expiresAt: event.expires_at } : {}),
          ...(event.recipients ? { recipients: event.recipients } : {}),
        },
      ],
    };
    return storedReceipt(await repo.insertReceiptOnce(this.deps.db, await this.signReceipt(act)));
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
  ): Promise<{
    /** The act's receipt (null when nothing was recorded: the GPC signal honoured before). */
    receiptId: string | null;
    receiptUrl: string | null;
    events: RecordedEvent[];
    consents: ConsentView[];
  }> {
    const now = this.deps.clock();
    this.validate(set, now);
    const notice = this.deps.catalog.noticesByVersion.get(set.noticeVersion)!;
    const evidence = {
      request_id: provenance.requestId,
      ip_hash: provenance.ip ? this.hash(provenance.ip) : null,
      user_agent_hash: provenance.userAgent ? this.hash(provenance.userAgent) : null,
    };

    const committed = await this.deps.db.transaction().execute(async (trx) => {
      const account = await this.deps.accounts.requireForUpdate(trx, accountId);
      if (account.status === 'closed') {
        throw new AppError(
          'conflict',
          'The account is closed: no consent can be recorded for it until it is re-opened.',
        );
      }
      await repo.lockAccountConsents(trx, accountId);
      if (set.gpc === 'claim' && !(await this.deps.accounts.claimGpc(trx, accountId, now))) return commit(trx, [], now);
      const current = new Map((await repo.findStates(trx, accountId)).map((s) => [key(s.purpose, s.category), s]));
      const planned: Planned[] = [];
      for (const change of set.changes) {
        const k = key(change.purpose, change.category);
        const before = planned.findLast((p) => key(p.state.purpose, p.state.category) === k)?.state ?? current.get(k);
        const { kind, state } = transition(change.choice, before, now);
        const term = now.getTime() + this.deps.catalog.consentTermDays * DAY_MS;
        const expiresAt = change.choice === 'grant' ? (change.expiresAt ?? new Date(term)) : null;
        // A renewal that names no recipients keeps those of the grant it renews: it extends the term, never the scope.
        const renewing = kind === 'renewed' && !change.recipients && before?.recipients;
        const recipients = change.choice === 'grant' ? renewing || this.recipientsOf(change) : null;
        const { purpose, category } = change;
        const event = eventRow({
          accountId,
          purpose,
          category,
          kind,
          actor: set.actor,
          channel: set.channel,
          notice,
          now,
        });
        planned.push({
          event: {
            ...event,
            expires_at: expiresAt,
            recipients,
            verification: set.verification ?? null,
            reference: set.reference ?? null,
            under_gpc: set.gpc !== undefined,
            client_id: provenance.clientId,
            ...evidence,
          },
          state: {
            account_id: accountId,
            purpose: change.purpose,
            category: change.category,
            state,
            consent_id: event.event_id,
            notice_version: notice.version,
            granted_at: state === 'granted' ? now : (before?.granted_at ?? null),
            expires_at: state === 'granted' ? expiresAt : (before?.expires_at ?? null),
            revoked_at: state === 'revoked' ? now : null,
            updated_at: now,
            recipients,
          },
        });
      }
      if (!planned.length) return commit(trx, planned, now);
      // One act, one receipt: signed now, stored with the events, named by each of them (and by their audit records).
      const receiptId = randomUUID();
      const events = planned.map((p) => ({ ...p, event: { ...p.event, receipt_id: receiptId } }));
      const receipt = await this.signReceipt({
        receiptId,
        accountId,
        recordedAt: now,
        language: provenance.language ?? 'en',
        channel: set.channel,
        actor: set.actor,
        ...(set.verification ? { verification: set.verification } : {}),
        ...(set.reference ? { reference: set.reference } : {}),
        underGpc: set.gpc === 'present',
        notice,
        events: events.map(({ event: e }) => ({
          eventId: e.event_id,
          purpose: e.purpose,
          category: e.category,
          kind: e.kind,
          ...(e.expires_at ? { expiresAt: e.expires_at } : {}),
          ...(e.recipients ? { recipients: e.recipients } : {}),
        })),
      });
      return commit(trx, events, now, { recordChanges: true, receipt });
    });
    await this.deps.coherence.announce(committed.change);
    const receiptId = committed.receiptId;

    for (const { event: e } of committed.planned)
      this.deps.metrics.consentEvents.inc({ kind: e.kind, channel: e.channel });
    const latest = new Map(committed.planned.map((c) => [key(c.state.purpose, c.state.category), c.state]));
    return {
      receiptId,
      receiptUrl: receiptId && this.deps.receiptUrl(receiptId),
      events: committed.planned.map(({ event: e, seq }) => ({
        eventId: e.event_id,
        seq,
        purpose: e.purpose,
        category: e.category,
        kind: e.kind,
        occurredAt: now,
        ...(e.expires_at ? { expiresAt: e.expires_at } : {}),
        ...(e.recipients ? { recipients: e.recipients } : {}),
        receiptId: receiptId!,
        receiptUrl: this.deps.receiptUrl(receiptId!),
      })),
      consents: [...latest.values()].map((s) => this.view(s, now)),
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
      const expired = await this.deps.db.transaction().execute(async (trx) => {
        const planned = endGrants(await repo.lockOverdueGrants(trx, now, batchSize), 'expired', now);
        return commit(trx, planned, now);
      });
      const count = expired.planned.length;
      if (count) await this.deps.coherence.announce(expired.change);
      total += count;
      if (count) this.deps.metrics.consentEvents.inc({ kind: 'expired', channel: 'system' }, count);
      if (count < batchSize) return total;
    }
  }

  /**
   * For the accounts component, in the transaction that closes these accounts: each opt-in still in force ends with a
   * `lapsed` event, so that re-opening an account does not bring it back. The caller records the accounts as changed
   * and announces them.
   */
  async lapseOnClosure(trx: Db, accountIds: readonly string[], now: Date): Promise<Map<string, number>> {
    const planned = endGrants(await repo.lockGrantsInForce(trx, accountIds, now), 'lapsed', now);
    await commit(trx, planned, now, { recordChanges: false });
    if (planned.length) this.deps.metrics.consentEvents.inc({ kind: 'lapsed', channel: 'system' }, planned.length);
    const perAccount = new Map<string, number>();
    for (const { event } of planned) perAccount.set(event.account_id, (perAccount.get(event.account_id) ?? 0) + 1);
    return perAccount;
  }

  /** Every check against the catalog, reported together. */
  private validate(set: ChangeSet, now: Date): void {
    const { catalog } = this.deps;
    const problems: FieldProblem[] = [];
    const notice = catalog.noticesByVersion.get(set.noticeVersion);
    if (!notice) problems.push({ path: 'noticeVersion', message: 'unknown notice version' });
    else if (notice.effectiveAt > now) {
      problems.push({ path: 'noticeVersion', message: 'this notice version is not in effect yet' });
    }
    // Staff record a change on the subscriber's word: how they made sure who spoke, and in which call or ticket.
    if (set.actor.type === 'staff') {
      if (!set.verification)
        problems.push({ path: 'verification', message: 'staff must say how they verified the subscriber' });
      if (!set.reference) problems.push({ path: 'reference', message: 'staff must give the call or ticket id' });
    }
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
      const asks = catalog.purposes.get(c.purpose)?.categories;
      if (c.choice === 'grant' && category && asks && !asks.includes(c.category)) {
        at('category', `${c.purpose} does not ask for this category (the catalog lists what each purpose may ask for)`);
      }
      if (c.choice === 'grant' && !set.affirmative) {
        at('choice', 'a grant needs an express, affirmative act: send affirmative: true');
      }
      if (c.expiresAt && c.choice !== 'grant') at('expiresAt', 'only a grant has an expiry');
      if (c.expiresAt && c.expiresAt.getTime() <= now.getTime()) at('expiresAt', 'must be in the future');
      if (c.expiresAt && c.expiresAt.getTime() > maxExpiry) {
        at('expiresAt', `must be within ${catalog.maxConsentTermDays} days`);
      }
      this.checkRecipients(c, at);
      const superseding =
        notice && c.choice === 'grant' ? supersedingNotice(catalog, notice, c.purpose, now) : undefined;
      if (superseding && !problems.some((p) => p.path === 'noticeVersion')) {
        problems.push({
          path: 'noticeVersion',
          message:
            `notice ${notice!.version} was superseded for ${c.purpose} by ${superseding.version}: ` +
            `show the subscriber ${superseding.version} and record the grant under it`,
        });
      }
    });
    if (problems.length) throw validationError(problems);
  }

  /** Named recipients: only on a grant for a purpose that names them, each in the registry and of an allowed kind. */
  private checkRecipients(c: ConsentChange, at: (field: string, message: string) => void): void {
    const kinds = this.deps.catalog.purposes.get(c.purpose)?.recipientKinds;
    if (c.recipients === undefined) {
      if (kinds && c.choice === 'grant' && !this.recipientsOf(c)?.length)
        at('recipients', `the registry holds no recipient of kind ${kinds.join(' or ')}`);
    } else if (!kinds) at('recipients', 'this purpose does not name recipients');
    else if (c.choice !== 'grant') at('recipients', 'only a grant names recipients (a revocation covers them all)');
    else {
      if (new Set(c.recipients).size !== c.recipients.length) at('recipients', 'names a recipient twice');
      c.recipients.forEach((id, j) => {
        const known = this.deps.catalog.recipients.get(id);
        if (!known) at(`recipients.${j}`, 'not in the recipient registry (GET /v1/recipients)');
        else if (!kinds.includes(known.kind))
          at(`recipients.${j}`, `must be a recipient of kind ${kinds.join(' or ')}`);
      });
    }
  }

  /** The recipients a grant covers: those it names, or every registered one of a kind its purpose allows. */
  private recipientsOf(c: ConsentChange): string[] | null {
    const kinds = this.deps.catalog.purposes.get(c.purpose)?.recipientKinds;
    if (!kinds) return null;
    if (c.recipients) return [...c.recipients];
    return [...this.deps.catalog.recipients.values()].filter((r) => kinds.includes(r.kind)).map((r) => r.id);
  }

  /** A state as the API and the portal show it (a grant past its expiry, or under a superseded notice). */
  private view(row: Omit<ConsentStateRow, 'last_event_id'>, now: Date): ConsentView {
    const view = toView(row, now);
    if (view.state !== 'granted') return view;
    const notice = this.deps.catalog.noticesByVersion.get(row.notice_version);
    const superseded = !notice || supersedingNotice(this.deps.catalog, notice, row.purpose, now);
    return superseded ? { ...view, state: 'superseded' } : view;
  }

  /** The receipt of an act, signed once: the row to store. */
  private async signReceipt(act: ReceiptAct): Promise<ConsentReceiptRow> {
    const payload = receiptPayload(act, this.deps.catalog, this.deps.receipts);
    return {
      receipt_id: act.receiptId,
      account_id: act.accountId,
      recorded_at: act.recordedAt,
      event_ids: act.events.map((e) => e.eventId),
      jws: await signJws(this.deps.keys, payload, RECEIPT_TYP),
    };
  }

  private hash(value: string): string {
    return createHmac('sha256', this.deps.evidenceKey).update(value).digest('hex');
  }
}

/** An event row without its provenance (set by the caller for changes from a channel). */
function eventRow(e: {
  accountId: string;
  purpose: string;
  category: string;
  kind: ConsentEventKind;
  actor?: { readonly type: ActorType; readonly id?: string };
  channel: Channel;
  notice: Pick<Notice, 'version' | 'sha256'>;
  now: Date;
}): repo.NewConsentEvent {
  return {
    event_id: randomUUID(),
    account_id: e.accountId,
    purpose: e.purpose,
    category: e.category,
    kind: e.kind,
    actor_type: e.actor?.type ?? 'system',
    actor_id: e.actor?.id ?? null,
    channel: e.channel,
    client_id: null,
    notice_version: e.notice.version,
    notice_sha256: e.notice.sha256,
    occurred_at: e.now,
    expires_at: null,
    recipients: null,
    verification: null,
    reference: null,
    request_id: null,
    ip_hash: null,
    user_agent_hash: null,
  };
}

/**
 * Inserts the events, saves the states they leave, logs which accounts changed (for the caches)
 * and appends the audit records, in the caller's transaction: all commit together or not at all.
 * The audit append comes last, so that the chain head is locked for the shortest time.
 */
async function commit(
  trx: Db,
  planned: readonly Planned[],
  now: Date,
  o: { recordChanges: boolean; receipt?: ConsentReceiptRow } = { recordChanges: true },
) {
  const events = planned.map((p) => p.event);
  if (o.receipt) await repo.insertReceipt(trx, o.receipt);
  const seqs = await repo.insertEvents(trx, events);
  // A change set may touch one item twice: the state is the last one's, citing the last event.
  const states = new Map<string, ConsentStateRow>();
  planned.forEach((p, i) => {
    states.set(`${p.state.account_id}\u0000${key(p.state.purpose, p.state.category)}`, {
      ...p.state,
      last_event_id: seqs[i]!,
    });
  });
  await repo.upsertStates(trx, [...states.values()]);
  const accounts = o.recordChanges ? [...new Set(events.map((e) => e.account_id))] : [];
  const change = await recordChanges(trx, accounts);
  await appendWithin(trx, events.map(auditRecordOf), now);
  return {
    planned: planned.map((p, i) => ({ ...p, seq: seqs[i]! })),
    change,
    receiptId: o.receipt?.receipt_id ?? null,
  };
}

/** The audit record of a consent event: committed in the same transaction as the event. */
function auditRecordOf(e: repo.NewConsentEvent) {
  return consentEventRecord({
    accountId: e.account_id,
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
    occurredAt: e.occurred_at,
    expiresAt: e.expires_at ?? undefined,
    recipients: e.recipients ?? undefined,
    verification: e.verification ?? undefined,
    reference: e.reference ?? undefined,
    ...(e.under_gpc ? { underGpc: true as const } : {}),
    receiptId: e.receipt_id ?? undefined,
    requestId: e.request_id ?? undefined,
    ipHash: e.ip_hash ?? undefined,
    userAgentHash: e.user_agent_hash ?? undefined,
  });
}

/** The events that end grants (their term ran out, or their account was closed), and the states they leave. */
function endGrants(rows: readonly repo.GrantRow[], kind: 'expired' | 'lapsed', now: Date): Planned[] {
  return rows.map(({ notice_sha256, last_event_id: _, ...s }): Planned => {
    const notice = { version: s.notice_version, sha256: notice_sha256 };
    const { account_id: accountId, purpose, category } = s;
    const event = eventRow({ accountId, purpose, category, kind, channel: 'system', notice, now });
    return {
      event: { ...event, expires_at: s.expires_at, recipients: s.recipients },
      state: { ...s, state: kind, consent_id: event.event_id, updated_at: now },
    };
  });
}

/** The material change in force at `now` that replaces `notice` for `purpose`, if there is one. */
function supersedingNotice(catalog: Catalog, notice: Notice, purpose: string, now: Date): Notice | undefined {
  return catalog.notices.findLast(
    (n) => n.ordinal > notice.ordinal && n.effectiveAt <= now && n.materialFor.includes(purpose),
  );
}

const key = (purpose: string, category: string) => `${purpose}\u0000${category}`;

/** What a choice does to the current state, and the event that records it. */
function transition(
  choice: Choice,
  before: Pick<ConsentStateRow, 'state' | 'expires_at'> | undefined,
  now: Date,
): { kind: ConsentEventKind; state: ConsentState } {
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
    ...(e.recipients ? { recipients: e.recipients } : {}),
    ...(e.verification ? { verification: e.verification } : {}),
    ...(e.reference ? { reference: e.reference } : {}),
    ...(e.under_gpc ? { underGpc: true } : {}),
    ...(e.receipt_id ? { receiptId: e.receipt_id } : {}),
  };
}

/** The receipt an event is shown with: its act's, or its own. */
const actOf = (e: ConsentEventView) => e.receiptId ?? e.eventId;

function storedReceipt(row: ConsentReceiptRow): StoredReceipt {
  const payloadJson = payloadBytesOf(row.jws);
  return {
    receiptId: row.receipt_id,
    accountId: row.account_id,
    recordedAt: row.recorded_at,
    eventIds: row.event_ids,
    jws: row.jws,
    payloadJson,
    payload: receiptPayloadSchema.parse(JSON.parse(payloadJson)),
  };
}

function toView(row: Omit<ConsentStateRow, 'last_event_id'>, now: Date): ConsentView {
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
    ...(row.recipients ? { recipients: row.recipients } : {}),
  };
}
