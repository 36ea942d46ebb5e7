import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import type { AccountStatus, ConsentState } from '../platform/vocabulary';

/** One consent of an account, as the decision engine needs it. */
export interface HeldConsent {
  readonly purpose: string;
  readonly category: string;
  readonly state: ConsentState;
  readonly consentId: string | null;
  readonly noticeVersion: string;
  readonly expiresAt: Date | null;
  readonly recipients: readonly string[] | null;
}

/** What the decision path keeps per account: its status (null: unknown) and its consent state, every purpose. */
export interface AccountState {
  readonly status: AccountStatus | null;
  readonly consents: readonly HeldConsent[];
}

export const UNKNOWN_ACCOUNT: AccountState = Object.freeze({ status: null, consents: Object.freeze([]) });

interface Row {
  account_id: string;
  status: AccountStatus;
  purpose: string | null;
  category: string | null;
  state: ConsentState | null;
  consent_id: string | null;
  notice_version: string | null;
  expires_at: Date | null;
  recipients: string[] | null;
}

/**
 * The decision read model: account status and the whole consent state of many accounts, in one
 * round trip. It reads the accounts and consent tables directly, which the house style otherwise
 * reserves to their components: the decision path is the hottest path and one indexed join beats
 * two calls; it only reads, and only these columns. Accounts that do not exist are absent.
 */
export async function loadAccountStates(db: Db, accountIds: readonly string[]): Promise<Map<string, AccountState>> {
  const { rows } = await sql<Row>`
    select a.account_id, a.status,
      s.purpose, s.category, s.state, s.consent_id, s.notice_version, s.expires_at, s.recipients
    from accounts a
    left join consent_state s on s.account_id = a.account_id
    where a.account_id = any(${accountIds}::text[])`.execute(db);
  const states = new Map<string, { status: AccountStatus; consents: HeldConsent[] }>();
  for (const r of rows) {
    let state = states.get(r.account_id);
    if (!state) {
      state = { status: r.status, consents: [] };
      states.set(r.account_id, state);
    }
    if (r.purpose && r.category && r.state && r.notice_version) {
      state.consents.push({
        purpose: intern(r.purpose),
        category: intern(r.category),
        state: intern(r.state),
        consentId: r.consent_id,
        noticeVersion: intern(r.notice_version),
        expiresAt: r.expires_at,
        recipients: r.recipients?.map(intern) ?? null,
      });
    }
  }
  return states;
}

/** Approximate bytes an entry holds (for the cache's byte bound). */
export const sizeOfAccountState = (s: AccountState) => 48 + s.consents.length * 200;

// Catalog ids and notice versions repeat across millions of cached rows: one string each.
const interned = new Map<string, string>();
function intern<S extends string>(s: S): S {
  const known = interned.get(s);
  if (known !== undefined) return known as S;
  interned.set(s, s);
  return s;
}
