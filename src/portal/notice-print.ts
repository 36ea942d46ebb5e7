import type { RequestHandler } from 'express';
import { type Catalog, currentNotice } from '../platform/config/catalog';
import { AppError } from '../platform/errors';
import type { Views } from '../platform/http/views';

/** A notice version as the catalog names them. */
const VERSION = /^[A-Za-z0-9._-]{1,32}$/;

export interface NoticePrintDeps {
  readonly catalog: Catalog;
  readonly views: Views;
  readonly clock: () => Date;
}

/**
 * `GET /notice/print[?version=]`: a notice version as a page to print and hand over (the one in force by default),
 * carrying its version, effective date and SHA-256, so that the paper can be matched to the delivery recorded. Only a
 * version in effect can be printed: an upcoming one is not a notice anyone may be given yet.
 */
export function noticePrintPage({ catalog, views, clock }: NoticePrintDeps): RequestHandler {
  return (req, res) => {
    const asked = req.query.version;
    if (asked !== undefined && (typeof asked !== 'string' || !VERSION.test(asked)))
      throw new AppError('bad-request', 'not a notice version');
    const now = clock();
    const notice = asked === undefined ? currentNotice(catalog, now) : catalog.noticesByVersion.get(asked);
    if (!notice || notice.effectiveAt > now) throw new AppError('not-found', 'no such notice in effect');
    const next = catalog.notices[notice.ordinal + 1];
    const replacedBy = next && next.effectiveAt <= now ? next : null;
    views.render(res, 'notice-print.njk', { notice, replacedBy, now });
  };
}
