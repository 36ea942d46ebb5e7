import type { AuditEventView } from '../audit';
import type { Catalog } from '../platform/config/catalog';
import type { PipelineNames } from '../platform/config/pipelines';

/**
 * The activity page in a person's terms: the decisions about the account, by day (UTC, as the portal's dates), each
 * one entry that the page says in one sentence. Names, not ids: the system by its display name (config/pipelines.json,
 * or none: "one of our systems"), the recipient by its legal name, the purpose and the information by their labels
 * (message keys), and each reason once.
 */

export interface ActivityEntry {
  /** When the system asked. */
  readonly at: Date;
  readonly outcome: 'allowed' | 'refused';
  /** The system's display name; null for one that has none. */
  readonly system: string | null;
  /** The legal name of the recipient the request named, if it named one. */
  readonly recipient: string | null;
  /** Message keys: the label of the purpose or exception, and of each kind of information asked about. */
  readonly purpose: string;
  readonly categories: readonly string[];
  /** Reason codes of the answer, each once, in the order of the categories. */
  readonly reasons: readonly string[];
}

export interface ActivityDay {
  /** Midnight UTC of the day. */
  readonly date: Date;
  readonly entries: readonly ActivityEntry[];
}

export interface ActivityNames {
  readonly catalog: Catalog;
  readonly pipelines: PipelineNames;
  readonly recipientName: (id: string) => string;
}

/** The page's decisions, newest first, grouped by day: one heading per day even should clocks disagree at midnight. */
export function activityDays(events: readonly AuditEventView[], names: ActivityNames): ActivityDay[] {
  const days = new Map<string, ActivityEntry[]>();
  for (const e of events) {
    if (e.type !== 'decision') continue;
    const entry = activityEntry(e.outcome, e.data, names);
    const day = e.data.evaluatedAt.slice(0, 10);
    const entries = days.get(day);
    if (entries) entries.push(entry);
    else days.set(day, [entry]);
  }
  return [...days].map(([day, entries]) => ({ date: new Date(`${day}T00:00:00Z`), entries }));
}

type Decision = Extract<AuditEventView, { type: 'decision' }>;

function activityEntry(outcome: Decision['outcome'], d: Decision['data'], names: ActivityNames): ActivityEntry {
  const { catalog } = names;
  const allowed = outcome === 'allow';
  // An allow rests on every result; a refusal on the results that refused.
  const reasons = new Set(d.results.filter((r) => r.allow === allowed).map((r) => r.reason));
  return {
    at: new Date(d.evaluatedAt),
    outcome: allowed ? 'allowed' : 'refused',
    system: names.pipelines.get(d.clientId) ?? null,
    recipient: d.recipient === undefined ? null : names.recipientName(d.recipient),
    purpose: catalog.purposes.has(d.purpose)
      ? `purposes.${d.purpose}.label`
      : catalog.exceptions.has(d.purpose)
        ? `exceptions.${d.purpose}.label`
        : 'activity.unknownPurpose',
    // A category the catalog no longer lists (or never did: the request was refused for it) is named as such, once.
    categories: [
      ...new Set(
        d.categories.map((c) => (catalog.categories.has(c) ? `categories.${c}.label` : 'activity.unknownCategory')),
      ),
    ],
    reasons: [...reasons],
  };
}
