import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import type { AccountStatus, ConsentState } from '../platform/vocabulary';
import type { ConsentSnapshot, Subject } from './engine';

interface SubjectRow {
  account_id: string;
  status: AccountStatus;
  category: string | null;
  state: ConsentState | null;
  consent_id: string | null;
  notice_version: string | null;
  expires_at: Date | null;
}

/**
 * The decision read model: account status and the consent state for one purpose, for many
 * accounts, in one round trip. This reads the accounts and consent tables directly, which the
 * house style otherwise reserves to their components: the decision path is the hottest path and
 * one indexed join beats two calls; it only reads, and only these columns.
 * Accounts that do not exist are absent from the result.
 */
export async function loadSubjects(
  db: Db,
  accountIds: readonly string[],
  purpose: string,
  categories: readonly string[],
): Promise<Map<string, Subject>> {
  const { rows } = await sql<SubjectRow>`
    select a.account_id, a.status, s.category, s.state, s.consent_id, s.notice_version, s.expires_at
    from accounts a
    left join consent_state s
      on s.account_id = a.account_id and s.purpose = ${purpose} and s.category = any(${categories}::text[])
    where a.account_id = any(${accountIds}::text[])`.execute(db);

  const subjects = new Map<string, { account: { status: AccountStatus }; consents: Map<string, ConsentSnapshot> }>();
  for (const r of rows) {
    let subject = subjects.get(r.account_id);
    if (!subject) {
      subject = { account: { status: r.status }, consents: new Map() };
      subjects.set(r.account_id, subject);
    }
    if (r.category && r.state && r.notice_version) {
      subject.consents.set(r.category, {
        state: r.state,
        consentId: r.consent_id,
        noticeVersion: r.notice_version,
        expiresAt: r.expires_at,
      });
    }
  }
  return subjects;
}
