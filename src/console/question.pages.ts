import { type Response, Router } from 'express';
import { z } from 'zod';
import { type AuditEventView, type ExportFilters, purposeId } from '../audit';
import type { Catalog } from '../platform/config/catalog';
import { AppError } from '../platform/errors';
import { decodeCursor } from '../platform/pagination';
import { accountId as accountIdSchema } from '../platform/vocabulary';
import type { ConsoleDeps, ConsoleKit } from './console.router';
import { categoryLabel, purposeLabel, purposeOptions } from './labels';

/** Decisions per page of the answer. */
const PAGE = 50;
const DAY_MS = 86_400_000;

const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date (YYYY-MM-DD)')
  .refine(
    (s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s),
    {
      message: 'must be a date (YYYY-MM-DD)',
    },
  );

/**
 * The regulator's question, as the form sends it: an account (empty: all), a purpose (`any`, or one of the catalog's),
 * a period of whole days in UTC (`to` inclusive) and an outcome. The export form sends the same fields.
 */
export function questionSchema(catalog: Catalog) {
  return z
    .strictObject({
      account: z.union([z.literal(''), accountIdSchema]).default(''),
      purpose: z
        .union([z.literal('any'), purposeId])
        .default('any')
        .refine((p) => p === 'any' || catalog.purposes.has(p) || catalog.exceptions.has(p), 'unknown purpose'),
      from: day,
      to: day,
      outcome: z.enum(['allow', 'deny', 'both']).default('both'),
    })
    .refine((q) => q.from <= q.to, { path: ['to'], message: 'must not be before the start of the period' });
}
export type Question = z.infer<ReturnType<typeof questionSchema>>;

/** What the question selects, as audit filters: decision records only; `to` is the day after the last one. */
export function questionFilters(q: Question): ExportFilters {
  const until = new Date(Date.parse(`${q.to}T00:00:00Z`) + DAY_MS);
  return {
    types: ['decision'],
    from: `${q.from}T00:00:00.000Z`,
    to: until.toISOString(),
    ...(q.account ? { accountId: q.account } : {}),
    ...(q.purpose !== 'any' ? { purpose: q.purpose } : {}),
    ...(q.outcome !== 'both' ? { outcome: q.outcome } : {}),
  };
}

/** The question as a query string (the answer's pages, the export form's fields). */
export const questionQuery = (q: Question) =>
  new URLSearchParams({
    account: q.account,
    purpose: q.purpose,
    from: q.from,
    to: q.to,
    outcome: q.outcome,
  }).toString();

/** Field problems of a form, by field name, for the page to show beside each field; undefined when it is valid. */
export function problemsOf(err: unknown): Record<string, string> | undefined {
  if (!(err instanceof AppError) || err.type !== 'validation' || !err.errors) return undefined;
  const problems: Record<string, string> = {};
  for (const e of err.errors) problems[e.path.split('.')[0] || 'form'] ??= e.message;
  return problems;
}

type Decision = Extract<AuditEventView, { type: 'decision' }>;

/** The consent event a decision relied on, as the lookup gives it (or only its id, when it is missing). */
interface ConsentSeen {
  readonly eventId: string;
  readonly missing?: boolean;
  readonly kind?: string;
  readonly category?: string;
  readonly occurredAt?: Date | string;
  readonly channel?: string;
  readonly noticeVersion?: string;
}

/** The console's pages for the regulator's question (/console/question). */
export function questionPages(d: ConsoleDeps, kit: ConsoleKit): Router {
  const router = Router();
  const schema = questionSchema(d.catalog);
  const categoryKey = (c: string) => categoryLabel(d.catalog, c).key ?? null;

  const show = (res: Response, context: Record<string, unknown>, status = 200) =>
    kit.render(
      res,
      'question.njk',
      { active: 'question', purposes: purposeOptions(d.catalog), problems: {}, answer: null, ...context },
      status,
    );

  router.get('/question', ...kit.signedIn, kit.complianceOnly, async (req, res) => {
    const { cursor, ...asked } = req.query as Record<string, unknown>;
    // Nothing asked yet: the form alone, for the last 30 days.
    if (!Object.keys(asked).length) {
      const today = d.clock();
      const q: Question = {
        account: '',
        purpose: 'any',
        from: new Date(today.getTime() - 30 * DAY_MS).toISOString().slice(0, 10),
        to: today.toISOString().slice(0, 10),
        outcome: 'both',
      };
      return show(res, { q });
    }
    const parsed = schema.safeParse(asked);
    if (!parsed.success) {
      const problems: Record<string, string> = {};
      for (const i of parsed.error.issues) problems[String(i.path[0] ?? 'form')] ??= i.message;
      const raw = (k: string) => (typeof asked[k] === 'string' ? (asked[k] as string) : '');
      const q = { account: raw('account'), purpose: raw('purpose'), from: raw('from'), to: raw('to'), outcome: '' };
      return show(res, { q, problems }, 422);
    }
    const q = parsed.data;
    const beforeSeq = typeof cursor === 'string' && cursor ? decodeCursor(cursor) : undefined;
    const filters = questionFilters(q);
    const page = await d.audit.events({ ...filters, order: 'desc', beforeSeq, limit: PAGE, withConsents: true });
    const decisions = page.events.filter((e): e is Decision => e.type === 'decision').map((e) => entryOf(e));
    // The view is recorded before the page is sent: who asked what, of which account (null: of all).
    await kit.recordView(res, 'question', q.account || null, {
      from: q.from,
      to: q.to,
      outcome: q.outcome,
      purpose: q.purpose,
      ...(q.account ? { account: q.account } : {}),
    });
    show(res, {
      q,
      query: questionQuery(q),
      answer: { decisions, next: page.nextCursor, first: beforeSeq === undefined },
      purposeName: q.purpose === 'any' ? null : (purposeLabel(d.catalog, q.purpose).key ?? null),
    });
  });

  function entryOf(e: Decision) {
    const data = e.data;
    const consents = ((e.consents ?? []) as ConsentSeen[]).map((c) => ({
      ...c,
      categoryLabel: c.category ? categoryKey(c.category) : null,
      occurredAt: c.occurredAt ? new Date(c.occurredAt) : null,
    }));
    return {
      seq: e.seq,
      at: e.recordedAt,
      accountId: e.accountId,
      clientId: data.clientId,
      clientName: d.pipelines.get(data.clientId) ?? null,
      purpose: data.purpose,
      purposeLabel: purposeLabel(d.catalog, data.purpose).key ?? null,
      categories: data.categories.map((c) => ({ id: c, label: categoryKey(c) })),
      recipient: data.recipient ?? null,
      recipientName: data.recipient ? (d.catalog.recipients.get(data.recipient)?.legalName ?? null) : null,
      allowed: e.outcome === 'allow',
      results: data.results.map((r) => ({ category: r.category, label: categoryKey(r.category), reason: r.reason })),
      consents,
    };
  }

  return router;
}
