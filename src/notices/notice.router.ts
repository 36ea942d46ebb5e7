import { Router } from 'express';
import { type Catalog, currentNotice, type Notice } from '../platform/config/catalog';
import { AppError } from '../platform/errors';
import { sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import { noticeRoutes as routes } from './notice.schema';

const summary = (n: Notice) => ({
  version: n.version,
  effectiveAt: n.effectiveAt,
  sha256: n.sha256,
  material: n.materialFor.length > 0,
  materialFor: n.materialFor,
});

export interface NoticeRouterDeps {
  readonly catalog: Catalog;
  readonly clock: () => Date;
}

/** Public: every channel records which notice version the subscriber was shown, and can show its text. */
export function noticeRouter({ catalog, clock }: NoticeRouterDeps): Router {
  const router = Router();
  const route = mounter(router);
  route(routes.list, (_input, _req, res) => {
    sendJson(res, {
      current: currentNotice(catalog, clock())?.version ?? null,
      versions: catalog.notices.map(summary),
    });
  });
  route(routes.get, ({ params }, _req, res) => {
    const notice = catalog.noticesByVersion.get(params.version);
    if (!notice) throw new AppError('not-found', 'No such notice version.');
    sendJson(res, { ...summary(notice), text: notice.text });
  });
  return router;
}
