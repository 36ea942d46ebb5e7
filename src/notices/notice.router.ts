import { Router } from 'express';
import { type Catalog, currentNotice, type Notice } from '../platform/config/catalog';
import { AppError } from '../platform/errors';

const summary = (n: Notice) => ({
  version: n.version,
  effectiveAt: n.effectiveAt,
  sha256: n.sha256,
  material: n.materialFor.length > 0,
  materialFor: n.materialFor,
});

/** Public: every channel records which notice version the subscriber was shown, and can show its text. */
export function noticeRouter(catalog: Catalog, clock: () => Date): Router {
  const router = Router();
  router.get('/v1/notices', (_req, res) => {
    res.json({ current: currentNotice(catalog, clock())?.version ?? null, versions: catalog.notices.map(summary) });
  });
  router.get('/v1/notices/:version', (req, res) => {
    const notice = catalog.noticesByVersion.get(req.params.version);
    if (!notice) throw new AppError('not-found', 'No such notice version.');
    res.json({ ...summary(notice), text: notice.text });
  });
  return router;
}
