import { z } from 'zod';
import { type AuditEventView, TIMELINE_KINDS, type TimelineKind } from '../audit';
import type { Catalog } from '../platform/config/catalog';
import type { PipelineNames } from '../platform/config/pipelines';
import { decodeCursor } from '../platform/pagination';
import { categoryLabel, type Label, purposeLabel } from './labels';

/**
 * The account timeline's words: its filters (a GET form, checked with zod; a value the form never sends is a 422
 * page) and its rows, one per audit record, in the console's terms: ids with their labels (message keys, for the
 * template's `t`), client ids with their display names, links to the record and, for a consent event, its receipt.
 */

export const TIMELINE_PAGE = 50;

/** A form field left empty is no filter. */
const blank = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional()) as unknown as z.ZodOptional<T>;

export function timelineQuery(catalog: Catalog) {
  const purposes = [...catalog.purposes.keys(), ...catalog.exceptions.keys()];
  return z
    .object({
      kind: blank(z.enum(['all', ...TIMELINE_KINDS])),
      purpose: blank(z.string().refine((p) => purposes.includes(p), 'not a purpose or exception of the catalog')),
      from: blank(z.iso.date()),
      to: blank(z.iso.date()),
      before: blank(z.string().max(64)),
    })
    .refine((q) => !q.from || !q.to || q.from <= q.to, { path: ['to'], message: 'must not be before `from`' });
}

export type TimelineFilters = z.infer<ReturnType<typeof timelineQuery>>;

/** What the audit service is asked: whole days in UTC, `to` included. */
export function timelineAsk(f: TimelineFilters) {
  const kind = f.kind && f.kind !== 'all' ? (f.kind as TimelineKind) : undefined;
  const to = f.to ? new Date(Date.parse(`${f.to}T00:00:00Z`) + 86_400_000).toISOString() : undefined;
  return {
    ...(kind ? { kinds: [kind] } : {}),
    ...(f.purpose ? { purpose: f.purpose } : {}),
    ...(f.from ? { from: `${f.from}T00:00:00.000Z` } : {}),
    ...(to ? { to } : {}),
    ...(f.before ? { beforeSeq: decodeCursor(f.before, 'before') } : {}),
  };
}

/** The filters as the view record keeps them, and as the links carry them: only those set. */
export function filterParams(f: TimelineFilters): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['kind', 'purpose', 'from', 'to'] as const) {
    const v = f[key];
    if (v && !(key === 'kind' && v === 'all')) out[key] = v;
  }
  return out;
}

export const timelineHref = (accountId: string, params: Record<string, string>) => {
  const qs = new URLSearchParams(params).toString();
  return `/console/accounts/${encodeURIComponent(accountId)}${qs ? `?${qs}` : ''}`;
};

export interface Names {
  readonly catalog: Catalog;
  readonly pipelines: PipelineNames;
}

export type TimelineRow = {
  readonly seq: number;
  readonly at: Date;
  readonly recordHref: string;
} & (
  | {
      readonly kind: 'consent';
      readonly event: string;
      readonly purpose: Label;
      readonly category: Label;
      readonly noticeVersion: string;
      readonly channel: string;
      readonly actorType: string;
      readonly actorId: string | null;
      readonly clientId: string | null;
      readonly verification: string | null;
      readonly reference: string | null;
      readonly expiresAt: string | null;
      readonly recipients: readonly string[];
      readonly underGpc: boolean;
      readonly receiptHref: string;
    }
  | {
      readonly kind: 'decision';
      readonly outcome: 'allow' | 'deny';
      readonly clientId: string;
      readonly clientName: string | null;
      readonly endpoint: string;
      readonly purpose: Label;
      readonly categories: readonly Label[];
      readonly recipient: string | null;
      readonly recipientName: string | null;
      readonly reference: string | null;
      /** Each category's answer and reason code (the template says the reason in plain words). */
      readonly results: readonly { readonly category: Label; readonly allow: boolean; readonly reason: string }[];
    }
  | {
      readonly kind: 'export';
      readonly actor: string;
      readonly role: string | null;
      readonly reference: string | null;
      readonly exportId: string;
      readonly format: string;
      readonly filters: string;
    }
  | {
      readonly kind: 'view';
      readonly actor: string;
      readonly role: string;
      readonly reference: string | null;
      readonly view: string;
      readonly filters: string;
    }
);

const describe = (filters: Record<string, unknown> | undefined) =>
  Object.entries(filters ?? {})
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`)
    .join('; ');

/** The timeline's rows, in the order given (newest first); records of other kinds are left out. */
export function timelineRows(accountId: string, events: readonly AuditEventView[], names: Names): TimelineRow[] {
  const { catalog, pipelines } = names;
  const account = encodeURIComponent(accountId);
  return events.flatMap((e): TimelineRow[] => {
    const base = { seq: e.seq, at: e.recordedAt, recordHref: `/console/records/${e.seq}` };
    if (e.type === 'consent_event') {
      const d = e.data;
      return [
        {
          ...base,
          kind: 'consent',
          event: d.kind,
          purpose: purposeLabel(catalog, d.purpose),
          category: categoryLabel(catalog, d.category),
          noticeVersion: d.noticeVersion,
          channel: d.channel,
          actorType: d.actorType,
          actorId: d.actorId ?? null,
          clientId: d.clientId ?? null,
          verification: d.verification ?? null,
          reference: d.reference ?? null,
          expiresAt: d.expiresAt ?? null,
          recipients: (d.recipients ?? []).map((r) => catalog.recipients.get(r)?.legalName ?? r),
          underGpc: d.underGpc === true,
          // An event recorded before receipts were kept has none of its own: its id finds the one the service makes.
          receiptHref: `/console/accounts/${account}/receipts/${d.receiptId ?? d.eventId}`,
        },
      ];
    }
    if (e.type === 'decision') {
      const d = e.data;
      return [
        {
          ...base,
          kind: 'decision',
          outcome: e.outcome,
          clientId: d.clientId,
          clientName: pipelines.get(d.clientId) ?? null,
          endpoint: d.endpoint,
          purpose: purposeLabel(catalog, d.purpose),
          categories: d.categories.map((c) => categoryLabel(catalog, c)),
          recipient: d.recipient ?? null,
          recipientName: d.recipient === undefined ? null : (catalog.recipients.get(d.recipient)?.legalName ?? null),
          reference: d.reference ?? null,
          results: d.results.map((r) => ({
            category: categoryLabel(catalog, r.category),
            allow: r.allow,
            reason: r.reason,
          })),
        },
      ];
    }
    const d = e.data;
    if (d.action === 'export_requested') {
      const { accountId: _named, ...rest } = d.filters;
      return [
        {
          ...base,
          kind: 'export',
          actor: d.actor,
          role: d.role ?? null,
          reference: d.reference ?? null,
          exportId: d.exportId,
          format: d.format,
          filters: describe(rest),
        },
      ];
    }
    if (d.action === 'console_viewed') {
      return [
        {
          ...base,
          kind: 'view',
          actor: d.actor,
          role: d.role,
          reference: d.reference ?? null,
          view: d.view,
          filters: describe(d.filters),
        },
      ];
    }
    return [];
  });
}
