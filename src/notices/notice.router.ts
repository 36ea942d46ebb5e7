import { Router } from 'express';
import { marked } from 'marked';
import { principalOf } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { type Catalog, currentNotice, type Notice } from '../platform/config/catalog';
import { AppError } from '../platform/errors';
import { requestIdOf, sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import { decodeCursor } from '../platform/pagination';
import { NOTICE_MEDIA_TYPES, noticeRoutes as routes } from './notice.schema';
import type { NoticeService } from './notice.service';

const summary = (n: Notice) => ({
  version: n.version,
  effectiveAt: n.effectiveAt,
  sha256: n.sha256,
  material: n.materialFor.length > 0,
  materialFor: n.materialFor,
});

/**
 * The notice as HTML for another channel to show (a till, a call-centre screen): a fragment, so that it sits in the
 * caller's own page, with what identifies the text it was rendered from. The text comes from config/, as in the
 * portal; version names are `[A-Za-z0-9._-]` (the catalog checks), so the attributes need no escaping.
 */
const noticeFragment = (n: Notice) =>
  `<article class="optgate-notice" data-version="${n.version}" data-effective-at="${n.effectiveAt.toISOString()}"` +
  ` data-sha256="${n.sha256}">\n${marked.parse(n.text, { async: false })}</article>\n`;

export interface NoticeRouterDeps {
  readonly catalog: Catalog;
  readonly clock: () => Date;
  readonly notices: NoticeService;
  readonly verifier: TokenVerifier;
}

/** Public: every channel records which notice version the subscriber was shown, and can show its text. */
export function noticeRouter({ catalog, clock, notices, verifier }: NoticeRouterDeps): Router {
  const router = Router();
  const route = mounter(router, verifier);
  route(routes.list, (_input, _req, res) => {
    sendJson(res, {
      current: currentNotice(catalog, clock())?.version ?? null,
      versions: catalog.notices.map(summary),
    });
  });
  route(routes.get, ({ params }, req, res) => {
    res.vary('Accept');
    const notice = catalog.noticesByVersion.get(params.version);
    if (!notice) throw new AppError('not-found', 'No such notice version.');
    switch (req.accepts([...NOTICE_MEDIA_TYPES])) {
      case 'application/json':
        return sendJson(res, { ...summary(notice), text: notice.text });
      case 'text/plain':
        return void res.type('text/plain; charset=utf-8').send(notice.text);
      case 'text/html':
        return void res.type('text/html; charset=utf-8').send(noticeFragment(notice));
      default:
        throw new AppError('not-acceptable', `A notice is available as ${NOTICE_MEDIA_TYPES.join(', ')}.`);
    }
  });
  route(routes.recordDelivery, async ({ params: { accountId }, body }, _req, res) => {
    const provenance = { clientId: principalOf(res).clientId, requestId: requestIdOf(res) };
    sendJson(res, await notices.recordDelivery(accountId, body, provenance), 201);
  });
  route(routes.listDeliveries, async ({ params: { accountId }, query }, _req, res) => {
    const beforeSeq = query.cursor ? decodeCursor(query.cursor) : undefined;
    sendJson(res, await notices.deliveries(accountId, { beforeSeq, limit: query.limit }));
  });
  return router;
}
