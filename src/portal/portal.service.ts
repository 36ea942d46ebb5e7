import type { AccountService } from '../accounts';
import type { AuditService } from '../audit';
import type { ConsentChange, ConsentService, ConsentView, Provenance, RecordedEvent } from '../consent';
import { type Catalog, type Category, currentNotice } from '../platform/config/catalog';
import { AppError, validationError } from '../platform/errors';
import { type ConsentSnapshot, evaluate } from '../policy';

const PAGE = 25;
/** Uses that the Global Privacy Control signal takes back: sale, disclosure, access in place and targeted ads. */
const GPC_PURPOSES = ['data_sale', 'third_party_disclosure', 'permit_access', 'ad_targeting'];

export type ItemStatus =
  | 'allowed'
  | 'askAgain'
  | 'expired'
  | 'revoked'
  | 'declined'
  | 'notAsked'
  | 'defaultAllowed'
  | 'optedOut'
  | 'allowedOptOut'
  | 'lapsed';

export interface ItemView {
  readonly purpose: string;
  readonly category: string;
  readonly regime: 'opt_in' | 'opt_out';
  readonly status: ItemStatus;
  /** Expiry (allowed) or lapse (expired). */
  readonly date?: Date;
  readonly expiresSoon: boolean;
  /** What the subscriber chose and still stands; never a default. */
  readonly chosen: 'allow' | 'deny' | null;
  /** An allowed item of a purpose that names its recipients: their legal names. */
  readonly recipients?: readonly string[];
  /** Needs its own explicit choice: a choice for the whole purpose never allows it. */
  readonly sensitive: boolean;
  /** No longer asked for by its purpose (the catalog changed): shown while the earlier opt-in still counts. */
  readonly unasked?: boolean;
}

export interface PurposeView {
  readonly purpose: string;
  readonly askAgain: boolean;
  /**
   * The choice for the whole purpose as it stands: `allow` when every kind of information it covers is allowed (and
   * nothing is opted out), `deny` when everything is refused, none otherwise. Never a default.
   */
  readonly choice: 'allow' | 'deny' | null;
  /** The opt-in categories a choice for the whole purpose allows: every one it asks for but the sensitive ones. */
  readonly covers: readonly string[];
  /** The sensitive categories it asks for: each needs its own explicit choice. */
  readonly sensitive: readonly string[];
  /** How many of its opt-in items are allowed now, of how many. */
  readonly allowed: number;
  readonly optIns: number;
  /** A purpose that names its recipients: the legal names of those an opt-in here covers. */
  readonly recipients?: readonly string[];
  readonly items: readonly ItemView[];
}

export interface ChoicesView {
  readonly accountId: string;
  readonly closed: boolean;
  readonly noticeVersion: string;
  readonly purposes: readonly PurposeView[];
  readonly askAgain: readonly string[];
  readonly anyAllowed: boolean;
  /** What the page says first: how many uses are allowed, and which expire soon (before `soonBefore`). */
  readonly summary: {
    readonly allowed: number;
    readonly expiring: readonly ItemView[];
    readonly soonBefore: Date;
  };
}

const DAY_MS = 86_400_000;

/** The activity page's filter: only what was allowed, or only what was refused. */
export type ActivityFilter = 'allowed' | 'refused';

/** Thrown when the subscriber chose under a notice that is no longer the one in force. */
export class NoticeChangedError extends Error {}

/** What the portal shows and records: choices, saving them, revoke-all, GPC, history, receipts, activity. */
export interface PortalDeps {
  readonly catalog: Catalog;
  readonly accounts: AccountService;
  readonly consents: ConsentService;
  readonly audit: AuditService;
  readonly clock: () => Date;
  /** A permission that expires within this many days is listed on top, with its renew button. */
  readonly expiringDays: number;
}

export class PortalService {
  private readonly catalog: Catalog;
  private readonly consents: ConsentService;

  constructor(private readonly deps: PortalDeps) {
    this.catalog = deps.catalog;
    this.consents = deps.consents;
  }

  /**
   * Every purpose, with each category it asks for (and any other it still holds an opt-in for) in its state, judged by
   * the decision engine itself, so that the page says what pipelines are told.
   */
  async choices(accountId: string): Promise<ChoicesView> {
    const now = this.deps.clock();
    const soonBefore = new Date(now.getTime() + this.deps.expiringDays * DAY_MS);
    const account = await this.deps.accounts.require(accountId);
    const states = await this.consents.currentState(accountId);
    const notice = currentNotice(this.catalog, now);
    if (!notice) throw new AppError('unavailable', 'No notice is in force.');
    const purposes = [...this.catalog.purposes.values()].map((p): PurposeView => {
      const { id: purpose, recipientKinds } = p;
      const mine = new Map(states.filter((s) => s.purpose === purpose).map((s) => [s.category, s] as const));
      // The categories the purpose asks for, and any other one the subscriber chose for it before the catalog changed
      // (shown while it still counts, so that it can be taken back).
      const categories = [...new Set([...p.categories, ...mine.keys()])];
      const snapshots = new Map<string, ConsentSnapshot>(
        [...mine].map(([c, s]) => [
          c,
          {
            // The engine finds a superseded notice by itself.
            state: s.state === 'superseded' ? 'granted' : s.state,
            consentId: s.consentId,
            noticeVersion: s.noticeVersion,
            expiresAt: s.expiresAt ?? null,
            recipients: s.recipients ?? null,
          },
        ]),
      );
      const subject = { account: { status: 'active' as const }, consents: snapshots };
      // A purpose that names recipients is judged per category, for a recipient the opt-in covers (or any the
      // registry has): the page says whether the subscriber's opt-in stands, not whom a pipeline asked about.
      const eligible = [...this.catalog.recipients.values()].filter((r) => recipientKinds?.includes(r.kind));
      const someRecipient = eligible[0]?.id;
      const results = recipientKinds
        ? categories.flatMap(
            (category) =>
              evaluate(
                { purpose, categories: [category], recipient: mine.get(category)?.recipients?.[0] ?? someRecipient },
                subject,
                this.catalog,
                now,
              ).results,
          )
        : // Judged as if the account were active: a closed account is shown as closed, and its choices as they stand.
          evaluate({ purpose, categories }, subject, this.catalog, now).results;
      const items = results.flatMap((r) => {
        const category = this.catalog.categories.get(r.category)!;
        const item = itemView(purpose, category, r.reason, mine.get(r.category), soonBefore, this.catalog.sensitive);
        const unasked = !p.categories.includes(r.category);
        if (unasked && item.status !== 'allowed' && item.status !== 'askAgain') return [];
        const named = mine.get(r.category)?.recipients;
        return [
          {
            ...item,
            ...(unasked ? { unasked } : {}),
            ...(item.status === 'allowed' && named ? { recipients: named.map(this.recipientName) } : {}),
          },
        ];
      });
      const optIns = items.filter((i) => i.regime === 'opt_in');
      const covered = items.filter((i) => !i.sensitive && !i.unasked);
      return {
        purpose,
        items,
        askAgain: items.some((i) => i.status === 'askAgain'),
        choice: purposeChoice(items, covered),
        covers: covered.filter((i) => i.regime === 'opt_in').map((i) => i.category),
        sensitive: items.filter((i) => i.sensitive).map((i) => i.category),
        allowed: optIns.filter((i) => i.status === 'allowed').length,
        optIns: optIns.length,
        ...(recipientKinds ? { recipients: eligible.map((r) => r.legalName) } : {}),
      };
    });
    const allowed = purposes.flatMap((p) => p.items).filter((i) => i.status === 'allowed');
    return {
      accountId,
      closed: account.status !== 'active',
      noticeVersion: notice.version,
      purposes,
      askAgain: purposes.filter((p) => p.askAgain).map((p) => p.purpose),
      anyAllowed: allowed.length > 0,
      summary: {
        allowed: allowed.length,
        expiring: allowed.filter((i) => i.expiresSoon).sort((a, b) => a.date!.getTime() - b.date!.getTime()),
        soonBefore,
      },
    };
  }

  /**
   * Saves the form: `p:<purpose>` = allow | deny (the whole purpose), `c:<purpose>:<category>` = allow | deny (one kind
   * of information), and `action` = save | renew_all | renew:<purpose>:<category>. A kind whose own choice was changed
   * follows it; the others follow the purpose's choice, if one was made, except that allowing a whole purpose never
   * allows a sensitive kind. Only what differs from the current state is recorded, as one act. There is no "allow
   * everything": each purpose is its own explicit act (an unknown action is refused).
   */
  async save(
    accountId: string,
    form: Record<string, unknown>,
    provenance: Provenance,
    o: { underGpc?: boolean } = {},
  ): Promise<RecordedEvent[]> {
    const view = await this.choices(accountId);
    if (form.noticeVersion !== view.noticeVersion) throw new NoticeChangedError();
    const action = typeof form.action === 'string' ? form.action : 'save';
    const items = view.purposes.flatMap((p) => p.items);
    const known =
      action === 'save' || action === 'renew_all' || items.some((i) => action === `renew:${i.purpose}:${i.category}`);
    if (!known) throw validationError([{ path: 'action', message: 'unknown action' }]);
    const changes: ConsentChange[] = [];
    for (const item of items) {
      const wanted = action === 'save' ? wantedFor(item, form) : undefined;
      const renew =
        action === 'renew_all'
          ? item.status === 'allowed'
          : action === `renew:${item.purpose}:${item.category}` && item.status === 'allowed';
      const choice = renew ? 'grant' : wanted ? changeFor(item, wanted) : undefined;
      if (choice) changes.push({ purpose: item.purpose, category: item.category, choice });
    }
    // An explicit choice wins over the standing signal, and says it was made while the signal was present.
    return this.record(accountId, view.noticeVersion, changes, provenance, { type: 'subscriber' }, true, {
      gpc: o.underGpc ? 'present' : undefined,
    });
  }

  /** One step: every opt-in that still counts is revoked, and the opt-out categories are opted out. */
  async revokeAll(accountId: string, provenance: Provenance): Promise<RecordedEvent[]> {
    const view = await this.choices(accountId);
    return this.record(
      accountId,
      view.noticeVersion,
      withdrawals(view, () => true),
      provenance,
      { type: 'subscriber' },
      false,
    );
  }

  /**
   * Global Privacy Control, a standing opt-out honoured once per account: the first time the signal is seen, the
   * opt-out categories are opted out for every use, and opt-ins for sale, disclosure, access and targeted advertising
   * are taken back. Later, the signal changes nothing: an opt-in the subscriber gives afterwards is an explicit act,
   * and wins. Returns the events recorded (none when the signal was honoured before).
   */
  async applyGpc(accountId: string, provenance: Provenance): Promise<RecordedEvent[]> {
    const account = await this.deps.accounts.require(accountId);
    // Honoured once; a closed account takes no change (and allows nothing the signal is about).
    if (account.gpc_at || account.status !== 'active') return [];
    const view = await this.choices(accountId);
    const changes = withdrawals(view, (purpose) => GPC_PURPOSES.includes(purpose));
    return this.record(accountId, view.noticeVersion, changes, provenance, { type: 'subscriber', id: 'gpc' }, false, {
      gpc: 'claim',
    });
  }

  /** Since when the subscriber's browser sends Global Privacy Control (null: never seen). */
  async gpcSince(accountId: string): Promise<Date | null> {
    return (await this.deps.accounts.require(accountId)).gpc_at;
  }

  /** A recipient's legal name (its id, should the registry no longer hold it). */
  readonly recipientName = (id: string) => this.catalog.recipients.get(id)?.legalName ?? id;

  /** A page of the history, one entry per act, newest first, and where the next (older) page starts, if any. */
  history(accountId: string, before?: string) {
    return this.consents.history(accountId, { before, limit: PAGE });
  }

  /** A page of the decisions about the account, newest first; only the allowed or the refused ones, if asked. */
  activity(accountId: string, o: { beforeSeq?: number; outcome?: ActivityFilter } = {}) {
    const outcome = o.outcome && ({ allowed: 'allow', refused: 'deny' } as const)[o.outcome];
    return this.deps.audit.accountActivity(accountId, { beforeSeq: o.beforeSeq, outcome, limit: PAGE });
  }

  /**
   * When staff looked at the account in the compliance console, newest first: one line per day, role and ticket (a
   * timeline and the receipt it links to, seen together, are one visit), from the last 50 views, at most 10 lines.
   */
  async staffViews(accountId: string): Promise<{ at: Date; role: 'compliance' | 'support'; reference?: string }[]> {
    const seen = new Map<string, { at: Date; role: 'compliance' | 'support'; reference?: string }>();
    for (const v of await this.deps.audit.accountViews(accountId, 50)) {
      const key = `${v.at.toISOString().slice(0, 10)} ${v.role} ${v.reference ?? ''}`;
      if (!seen.has(key)) seen.set(key, v);
    }
    return [...seen.values()].slice(0, 10);
  }

  /** Changes of this account, in the order asked; another account's event is not found. */
  async events(accountId: string, eventIds: readonly string[]) {
    const found = new Map((await this.consents.eventsByIds(eventIds)).map((e) => [e.eventId, e] as const));
    return eventIds.map((id) => {
      const event = found.get(id);
      if (!event || event.accountId !== accountId) throw new AppError('not-found', 'No such receipt.');
      return event;
    });
  }

  /** What one act changed (the last save, for its confirmation), by its receipt: its events, in the order recorded. */
  async change(accountId: string, receiptId: string) {
    const receipt = await this.consents.receipt(accountId, receiptId);
    if ('moved' in receipt) throw new AppError('not-found', 'No such receipt.');
    return { receiptId: receipt.receiptId, events: await this.events(accountId, receipt.eventIds) };
  }

  /**
   * A receipt of this account, as it was signed and stored; for an event of an act, `moved` names the act's receipt.
   * Another account's receipt is not found.
   */
  receipt(accountId: string, id: string) {
    return this.consents.receipt(accountId, id);
  }

  /**
   * A receipt for its page, with where its events' records are in the audit log once a signed tree head covers them
   * all (`signed`, else null: within a signing interval of the change).
   */
  async receiptPage(accountId: string, id: string) {
    const receipt = await this.consents.receipt(accountId, id);
    if ('moved' in receipt) return receipt;
    return { receipt, signed: (await this.deps.audit.consentEventsSigned(accountId, receipt.eventIds)) ?? null };
  }

  /**
   * A receipt's proof file: the signed receipt and the inclusion proof of each of its events' audit records against
   * one signed tree head (`optgate audit verify-proof` checks it). Not found until a tree head covers them all.
   */
  async receiptProofFile(accountId: string, id: string) {
    const receipt = await this.consents.receipt(accountId, id);
    if ('moved' in receipt) return receipt;
    const proofs = await this.deps.audit.consentEventProofs(accountId, receipt.eventIds);
    if (!proofs) throw new AppError('not-found', 'No signed tree head covers this receipt yet.');
    return { receiptId: receipt.receiptId, file: { receipt: receipt.jws, proofs } };
  }

  private async record(
    accountId: string,
    noticeVersion: string,
    changes: ConsentChange[],
    provenance: Provenance,
    actor: { type: 'subscriber'; id?: string },
    affirmative: boolean,
    o: { gpc?: 'present' | 'claim' } = {},
  ): Promise<RecordedEvent[]> {
    // Honouring the signal is recorded on the account even when there is nothing to take back.
    if (!changes.length && o.gpc !== 'claim') return [];
    const { events } = await this.consents.record(
      accountId,
      { channel: 'portal', actor, noticeVersion, affirmative, changes, ...(o.gpc ? { gpc: o.gpc } : {}) },
      provenance,
    );
    return events;
  }
}

/**
 * Opt-outs for every opt-out item not opted out yet; revocations of the opt-ins that still count, for the purposes
 * chosen.
 */
function withdrawals(view: ChoicesView, revokeFor: (purpose: string) => boolean): ConsentChange[] {
  return view.purposes.flatMap((p) =>
    p.items.flatMap((item): ConsentChange[] => {
      if (item.regime === 'opt_out')
        return item.status === 'optedOut'
          ? []
          : [{ purpose: item.purpose, category: item.category, choice: 'opt_out' }];
      const counts = item.status === 'allowed' || item.status === 'askAgain';
      return counts && revokeFor(item.purpose)
        ? [{ purpose: item.purpose, category: item.category, choice: 'revoke' }]
        : [];
    }),
  );
}

/**
 * What the form asks for one item: its own choice when the subscriber changed it; otherwise the choice made for its
 * whole purpose, which never allows a sensitive kind nor one the purpose no longer asks for (it may refuse them).
 */
function wantedFor(item: ItemView, form: Record<string, unknown>): 'allow' | 'deny' | undefined {
  const own = asChoice(form[`c:${item.purpose}:${item.category}`]);
  if (own && own !== item.chosen) return own;
  const whole = form[`p:${item.purpose}`];
  if (whole === 'deny') return 'deny';
  return whole === 'allow' && !item.sensitive && !item.unasked ? 'allow' : undefined;
}

/** A purpose's choice as it stands (see PurposeView.choice). */
function purposeChoice(items: readonly ItemView[], covered: readonly ItemView[]): 'allow' | 'deny' | null {
  if (items.every((i) => i.chosen === 'deny')) return 'deny';
  const allowed = (i: ItemView) => (i.regime === 'opt_in' ? i.status === 'allowed' : i.status !== 'optedOut');
  return covered.some((i) => i.regime === 'opt_in') && covered.every(allowed) ? 'allow' : null;
}

function itemView(
  purpose: string,
  { id: category, regime }: Category,
  reason: string,
  state: ConsentView | undefined,
  soonBefore: Date,
  sensitive: ReadonlySet<string>,
): ItemView {
  const base = { purpose, category, regime, expiresSoon: false, sensitive: sensitive.has(category) };
  switch (reason) {
    case 'consent_granted': {
      const date = state!.expiresAt!;
      return {
        ...base,
        status: 'allowed',
        date,
        chosen: 'allow',
        expiresSoon: date.getTime() < soonBefore.getTime(),
      };
    }
    case 'notice_superseded':
    case 'recipient_not_covered':
      return { ...base, status: 'askAgain', chosen: null };
    case 'consent_expired':
      return { ...base, status: 'expired', date: state?.expiresAt, chosen: null };
    case 'consent_revoked':
      return { ...base, status: 'revoked', chosen: 'deny' };
    case 'consent_lapsed':
      return { ...base, status: 'lapsed', chosen: null };
    case 'opted_out':
      return { ...base, status: 'optedOut', chosen: 'deny' };
    case 'not_opted_out':
      return state?.state === 'not_opted_out'
        ? { ...base, status: 'allowedOptOut', chosen: 'allow' }
        : { ...base, status: 'defaultAllowed', chosen: null };
    default:
      return state?.state === 'declined'
        ? { ...base, status: 'declined', chosen: 'deny' }
        : { ...base, status: 'notAsked', chosen: null };
  }
}

/** The page as the subscriber left it: each item's allow or deny as a submitted form chose it, to confirm again. */
export function withSelections(view: ChoicesView, form: Record<string, unknown>): ChoicesView {
  return {
    ...view,
    purposes: view.purposes.map((p) => ({
      ...p,
      choice: asChoice(form[`p:${p.purpose}`]) ?? p.choice,
      items: p.items.map((item) => ({
        ...item,
        chosen: asChoice(form[`c:${item.purpose}:${item.category}`]) ?? item.chosen,
      })),
    })),
  };
}

const asChoice = (value: unknown) => (value === 'allow' || value === 'deny' ? value : undefined);

/** The change that turns the item's current state into the wanted one, if any. */
function changeFor(item: ItemView, wanted: 'allow' | 'deny'): ConsentChange['choice'] | undefined {
  if (item.regime === 'opt_out') {
    if (wanted === 'deny') return item.status === 'optedOut' ? undefined : 'opt_out';
    return item.status === 'optedOut' ? 'withdraw_opt_out' : undefined;
  }
  if (wanted === 'allow') return item.status === 'allowed' ? undefined : 'grant';
  return item.status === 'revoked' || item.status === 'declined' ? undefined : 'revoke';
}
