import { type Response, Router } from 'express';
import { z } from 'zod';
import { AppError } from '../platform/errors';
import { parse } from '../platform/http/validate';
import { accountId as accountIdSchema } from '../platform/vocabulary';
import type { ConsoleDeps, ConsoleKit } from './console.router';
import { categoryLabel, purposeLabel, purposeOptions } from './labels';
import { filterParams, TIMELINE_PAGE, timelineAsk, timelineHref, timelineQuery, timelineRows } from './timeline';

const accountParams = z.object({ id: accountIdSchema });
const receiptParams = z.object({ id: accountIdSchema, receiptId: z.uuid() });
const recordParams = z.object({ seq: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER) });

/**
 * The account timeline (/console/accounts/:id), and the pages its rows link to: an audit record
 * (/console/records/:seq, with its inclusion proof) and a consent receipt (/console/accounts/:id/receipts/:receiptId).
 * Every page that shows an account's data records the view (`console_viewed`) before it is sent: no record, no page.
 */
export function timelinePages(d: ConsoleDeps, kit: ConsoleKit): Router {
  const router = Router();
  const query = timelineQuery(d.catalog);

  router.get('/accounts/:id', ...kit.signedIn, async (req, res) => {
    const { id } = parse(accountParams, req.params);
    // The gate first: support without this account's ticket reads nothing of it.
    kit.requireAccount(res, id);
    const filters = parse(query, req.query);
    const ask = timelineAsk(filters);
    const account = await d.accounts.require(id);
    const page = await d.audit.accountTimeline(id, { ...ask, limit: TIMELINE_PAGE });
    const params = filterParams(filters);
    await kit.recordView(res, 'timeline', id, {
      ...params,
      ...(ask.beforeSeq === undefined ? {} : { before: String(ask.beforeSeq) }),
    });
    kit.render(res, 'timeline.njk', {
      active: 'home',
      account,
      rows: timelineRows(id, page.events, d),
      filters: {
        kind: filters.kind ?? 'all',
        purpose: filters.purpose ?? '',
        from: filters.from ?? '',
        to: filters.to ?? '',
      },
      filtered: Object.keys(params).length > 0,
      purposes: purposeOptions(d.catalog),
      newerHref: ask.beforeSeq === undefined ? null : timelineHref(id, params),
      olderHref: page.nextCursor ? timelineHref(id, { ...params, before: page.nextCursor }) : null,
    });
  });

  router.get('/accounts/:id/receipts/:receiptId', ...kit.signedIn, async (req, res) => {
    const { id, receiptId } = parse(receiptParams, req.params);
    kit.requireAccount(res, id);
    const receipt = await d.consents.receipt(id, receiptId);
    // An event of an act: its act's receipt.
    if ('moved' in receipt) {
      return res.redirect(303, `/console/accounts/${encodeURIComponent(id)}/receipts/${receipt.moved}`);
    }
    const signed = (await d.audit.consentEventsSigned(id, receipt.eventIds)) ?? null;
    await kit.recordView(res, 'timeline', id, { receipt: receipt.receiptId });
    kit.render(res, 'timeline-receipt.njk', {
      active: 'home',
      accountId: id,
      receipt,
      r: receipt.payload,
      changes: receipt.payload.changes.map((c) => ({
        ...c,
        purposeLabel: purposeLabel(d.catalog, c.purpose),
        categoryLabel: categoryLabel(d.catalog, c.category),
      })),
      signed,
    });
  });

  router.get('/records/:seq', ...kit.signedIn, async (req, res) => {
    const { seq } = parse(recordParams, req.params);
    const found = await d.audit.recordAt(seq);
    if (!found) throw new AppError('not-found', 'No such record online.');
    mayRead(res, found.view.accountId);
    const proofable = await provable(seq);
    await kit.recordView(res, 'timeline', found.view.accountId, { record: String(seq) });
    kit.render(res, 'timeline-record.njk', {
      active: 'home',
      record: found.view,
      content: found.content,
      pretty: JSON.stringify(JSON.parse(found.content), null, 2),
      proofable,
    });
  });

  router.get('/records/:seq/proof.json', ...kit.signedIn, async (req, res) => {
    const { seq } = parse(recordParams, req.params);
    const found = await d.audit.recordAt(seq);
    if (!found) throw new AppError('not-found', 'No such record online.');
    mayRead(res, found.view.accountId);
    if (!(await provable(seq))) throw new AppError('not-found', 'No signed tree head covers this record yet.');
    const proof = await d.audit.inclusionProof(seq);
    await kit.recordView(res, 'timeline', found.view.accountId, { record: String(seq), proof: 'inclusion' });
    res
      .attachment(`optgate-record-${seq}.proof.json`)
      .type('application/json')
      .send(`${JSON.stringify(proof, null, 2)}\n`);
  });

  /**
   * A record of an account: compliance, or support with that account's ticket. A record of no account: compliance.
   * Support asking for another account's record gets a plain 403, which does not say whose record it is.
   */
  function mayRead(res: Response, accountId: string | null): void {
    const staff = kit.staffOf(res);
    if (staff.role === 'compliance') return;
    if (accountId !== null && staff.ticket?.accountId === accountId) return;
    throw new AppError('forbidden', 'support may read the records of its ticket account only');
  }

  /** Whether a signed tree head covers the record (an inclusion proof needs one). */
  async function provable(seq: number): Promise<boolean> {
    try {
      return (await d.audit.latestTreeHead()).treeSize >= seq;
    } catch (err) {
      if (err instanceof AppError && err.type === 'not-found') return false;
      throw err;
    }
  }

  return router;
}
