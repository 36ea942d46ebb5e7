import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import { principalOf } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import type { Catalog } from '../platform/config/catalog';
import { validationError } from '../platform/errors';
import { sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import { decodeCursor } from '../platform/pagination';
import { auditRoutes as routes } from './audit.schema';
import type { AuditService } from './audit.service';
import type { ExportService } from './export.service';

export interface AuditRouterDeps {
  readonly audit: AuditService;
  readonly exports: ExportService;
  readonly verifier: TokenVerifier;
  /** The purposes a `purpose` filter may name. */
  readonly catalog: Catalog;
}

/** A `purpose` filter must name a purpose or exception of the catalog: 422 otherwise, as for decisions. */
export function checkPurposeFilter(catalog: Catalog, purpose: string | undefined, path = 'purpose'): void {
  if (purpose !== undefined && !catalog.purposes.has(purpose) && !catalog.exceptions.has(purpose)) {
    throw validationError([{ path, message: 'unknown purpose' }]);
  }
}

export function auditRouter({ audit, exports: exportService, verifier, catalog }: AuditRouterDeps): Router {
  const router = Router();
  const route = mounter(router, verifier);

  route(routes.consentChanges, async ({ query }, _req, res) => {
    sendJson(res, await audit.consentChanges(query.after, query.limit));
  });

  route(routes.events, async ({ query }, _req, res) => {
    const { cursor, type: types, include, ...q } = query;
    checkPurposeFilter(catalog, q.purpose);
    const afterSeq = cursor ? decodeCursor(cursor) : undefined;
    sendJson(res, await audit.events({ ...q, types, afterSeq, withConsents: include === 'consents' }));
  });

  route(routes.checkpoints, async ({ query }, _req, res) => {
    const beforeSeq = query.cursor ? decodeCursor(query.cursor) : undefined;
    sendJson(res, await audit.checkpoints({ beforeSeq, limit: query.limit }));
  });

  route(routes.treeHeads, async ({ query }, _req, res) => {
    const beforeSeq = query.cursor ? decodeCursor(query.cursor) : undefined;
    sendJson(res, await audit.treeHeads({ beforeSeq, limit: query.limit }));
  });

  route(routes.latestTreeHead, async (_input, _req, res) => {
    sendJson(res, await audit.latestTreeHead());
  });

  route(routes.inclusionProof, async ({ query }, _req, res) => {
    sendJson(res, await audit.inclusionProof(query.seq, query.treeSize));
  });

  route(routes.consistencyProof, async ({ query }, _req, res) => {
    sendJson(res, await audit.consistencyProof(query.from, query.to));
  });

  route(routes.requestExport, async ({ body }, _req, res) => {
    const { format, ...filters } = body;
    checkPurposeFilter(catalog, filters.purpose);
    const exportId = await exportService.request(principalOf(res).clientId, filters, format);
    res.setHeader('location', `/v1/audit/exports/${exportId}`);
    sendJson(res, { exportId, status: 'queued' }, 202);
  });

  route(routes.exportStatus, async ({ params }, _req, res) => {
    sendJson(res, await exportService.status(params.id));
  });

  route(routes.exportManifest, async ({ params }, _req, res) => {
    res.type('application/jose').send(await exportService.manifest(params.id));
  });

  route(routes.exportDownload, async ({ params: { id } }, _req, res) => {
    const file = await exportService.fileInfo(id);
    res.setHeader('content-type', file.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson');
    res.setHeader('content-length', String(file.bytes));
    res.setHeader('content-disposition', `attachment; filename="optgate-audit-${id}.${file.format}"`);
    res.setHeader('x-content-sha256', file.sha256);
    // pipeline ends the response, and stops reading chunks when the caller hangs up (which is not an error of ours).
    // One piece read ahead, not Readable.from's default of 16; a stored chunk (1 MiB) is read at a time: a download
    // holds a few MiB, however many run.
    await pipeline(Readable.from(exportService.download(id), { highWaterMark: 1 }), res).catch(
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw err;
      },
    );
  });

  return router;
}
