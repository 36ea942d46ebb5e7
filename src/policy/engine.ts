import type { Catalog, Notice } from '../platform/config/catalog';
import type { AccountStatus, CategoryResult, ConsentState, DenyReason } from '../platform/vocabulary';

export type { CategoryResult } from '../platform/vocabulary';

/**
 * The judgement: a pure function of (request, what the store holds, catalog, now). No I/O, no
 * clock of its own. Everything else (loading, auditing, metrics) lives around it.
 * Its behaviour is pinned by test/policy/cases/*.json, one case per row of SPEC's decision table.
 */

export interface DecisionInput {
  readonly purpose: string;
  readonly categories: readonly string[];
  /** The registry id of whom the data goes to (sale, disclosure, access in place, emergency services, a court). */
  readonly recipient?: string;
  readonly reference?: string;
}

export interface ConsentSnapshot {
  readonly state: ConsentState;
  readonly consentId: string | null;
  readonly noticeVersion: string;
  readonly expiresAt: Date | null;
  /** For a purpose that names its recipients: the recipients the opt-in covers (none when absent). */
  readonly recipients?: readonly string[] | null;
}

export interface Subject {
  /** null: the account is unknown. */
  readonly account: { readonly status: AccountStatus } | null;
  /** The current consent state for the request's purpose, by category. */
  readonly consents: ReadonlyMap<string, ConsentSnapshot>;
}

export type Verdict =
  | { readonly allow: true; readonly validUntil: Date; readonly results: readonly CategoryResult[] }
  | { readonly allow: false; readonly results: readonly CategoryResult[] };

export function evaluate(input: DecisionInput, subject: Subject, catalog: Catalog, now: Date): Verdict {
  const results = input.categories.map((category) => judgeCategory(input, category, subject, catalog, now));
  // An empty request allows nothing: there is nothing it could be allowed to use.
  if (results.length === 0 || results.some((r) => !r.allow)) return { allow: false, results };
  return { allow: true, validUntil: validUntil(input.purpose, results, catalog, now), results };
}

function judgeCategory(
  input: DecisionInput,
  category: string,
  subject: Subject,
  catalog: Catalog,
  now: Date,
): CategoryResult {
  const deny = (reason: DenyReason): CategoryResult => ({ category, allow: false, reason });
  const regime = catalog.categories.get(category)?.regime;
  if (!regime) return deny('unknown_category');
  const exception = catalog.exceptions.get(input.purpose);
  const purpose = exception ?? catalog.purposes.get(input.purpose);
  if (!purpose) return deny('unknown_purpose');
  const recipientProblem = judgeRecipient(input.recipient, purpose.recipientKinds, catalog);
  if (recipientProblem) return deny(recipientProblem);
  if (!subject.account) return deny('unknown_account');
  // A closed account keeps only the exceptions that outlive the relationship (billing and collection, fraud, courts).
  if (subject.account.status !== 'active' && !exception?.survivesClosure) return deny('account_closed');

  if (exception) {
    if (!exception.categories.includes(category)) return deny('exception_not_applicable');
    if (exception.referencePattern && !exception.referencePattern.test(input.reference ?? ''))
      return deny('exception_not_applicable');
    return { category, allow: true, reason: 'exception' };
  }

  const consent = subject.consents.get(category);
  if (regime === 'opt_out') {
    return consent?.state === 'opted_out' ? deny('opted_out') : { category, allow: true, reason: 'not_opted_out' };
  }
  switch (consent?.state) {
    case 'granted':
      break;
    case 'revoked':
      return deny('consent_revoked');
    case 'expired':
      return deny('consent_expired');
    case 'lapsed':
      return deny('consent_lapsed');
    default:
      // Never asked, declined, or a state that does not belong to an opt-in category.
      return deny('no_consent');
  }
  if (!consent.expiresAt || !consent.consentId || now.getTime() >= consent.expiresAt.getTime())
    return deny('consent_expired');
  const shown = catalog.noticesByVersion.get(consent.noticeVersion);
  const lastMaterial = lastMaterialChange(catalog, input.purpose, now);
  // A version the catalog no longer knows cannot be shown to be current: treat it as superseded.
  if (!shown || (lastMaterial && shown.ordinal < lastMaterial.ordinal)) return deny('notice_superseded');
  // An opt-in to sale, disclosure or access names its recipients: one it does not name is not covered.
  if (purpose.recipientKinds && !consent.recipients?.includes(input.recipient!)) return deny('recipient_not_covered');
  return {
    category,
    allow: true,
    reason: 'consent_granted',
    consentId: consent.consentId,
    expiresAt: consent.expiresAt,
  };
}

/**
 * A purpose that names its recipients needs one from the registry, of a kind it allows; any other purpose may name
 * one, from the registry. (The API answers these with 422; the engine denies them all the same.)
 */
function judgeRecipient(
  recipient: string | undefined,
  kinds: readonly string[] | undefined,
  catalog: Catalog,
): DenyReason | undefined {
  if (recipient === undefined) return kinds ? 'recipient_required' : undefined;
  const known = catalog.recipients.get(recipient);
  if (!known) return 'unknown_recipient';
  if (kinds && !kinds.includes(known.kind)) return 'recipient_kind_not_allowed';
  return undefined;
}

/** The latest notice in force at `now` that is a material change for `purpose`. */
function lastMaterialChange(catalog: Catalog, purpose: string, now: Date): Notice | undefined {
  let last: Notice | undefined;
  for (const n of catalog.notices) {
    if (n.effectiveAt.getTime() > now.getTime()) break;
    if (n.materialFor.includes(purpose)) last = n;
  }
  return last;
}

/**
 * An allow may be reused for the catalog's reuse window at most (`decisionReuseSeconds`), so that a revocation reaches
 * a caller that honours validUntil within that window, even one that never reads the change feed; sooner when a
 * consent it relied on expires first, or when a notice version material for the purpose takes effect first (the
 * consents stop counting at that moment).
 */
function validUntil(purpose: string, results: readonly CategoryResult[], catalog: Catalog, now: Date): Date {
  let until = now.getTime() + catalog.decisionReuseSeconds * 1000;
  let reliesOnConsent = false;
  for (const r of results) {
    if (!r.allow || !r.expiresAt) continue;
    reliesOnConsent = true;
    until = Math.min(until, r.expiresAt.getTime());
  }
  const nextMaterial = reliesOnConsent
    ? catalog.notices.find((n) => n.effectiveAt.getTime() > now.getTime() && n.materialFor.includes(purpose))
    : undefined;
  if (nextMaterial) until = Math.min(until, nextMaterial.effectiveAt.getTime());
  return new Date(until);
}
