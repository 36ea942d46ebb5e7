import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import { z } from 'zod';
import { accountIdSchema } from '../accounts/account.service';
import { principalOf, requireScope } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { jsonBody } from '../platform/http/middleware';
import { parse } from '../platform/http/validate';
import { type AuditService, decodeCursor } from './audit.service';
import type { ExportService } from './export.service';

const type = z.enum(['consent_event', 'decision', 'staff_action']);
const filters = {
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  accountId: accountIdSchema.optional(),
  outcome: z.enum(['allow', 'deny']).optional(),
};
const page = {
  cursor: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
};
const eventsQuery = z.strictObject({
  ...filters,
  ...page,
  type: z
    .string()
    .transform((s) => s.split(','))
    .pipe(z.array(type))
    .optional(),
  include: z.literal('consents').optional(),
});
const checkpointsQuery = z.strictObject(page);
export const exportRequestSchema = z.strictObject({
  ...filters,
  types: z.array(type).min(1).optional(),
  format: z.enum(['ndjson', 'csv']),
});
const exportParam = z.object({ id: z.uuid('not an export id') });

const changesQuery = z.strictObject({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

// Not `exports`: in CommonJS output that name would shadow the module's own exports object.
export function auditRouter(audit: AuditService, exportService: ExportService, verifier: TokenVerifier): Router {
  const router = Router();

  router.get('/v1/consent-changes', requireScope(verifier, 'decisions'), async (req, res) => {
    const { after, limit } = parse(changesQuery, req.query);
    res.json(await audit.consentChanges(after, limit));
  });

  router.use('/v1/audit', requireScope(verifier, 'audit:read'));

  router.get('/v1/audit/events', async (req, res) => {
    const { cursor, type: types, include, ...q } = parse(eventsQuery, req.query);
    res.json(
      await audit.events({
        ...q,
        types,
        afterSeq: cursor ? decodeCursor(cursor) : undefined,
        withConsents: include === 'consents',
      }),
    );
  });

  router.get('/v1/audit/checkpoints', async (req, res) => {
    const { cursor, limit } = parse(checkpointsQuery, req.query);
    res.json(await audit.checkpoints({ beforeSeq: cursor ? decodeCursor(cursor) : undefined, limit }));
  });

  router.post('/v1/audit/exports', jsonBody('16kb'), async (req, res) => {
    const { format, ...f } = parse(exportRequestSchema, req.body);
    const exportId = await exportService.request(principalOf(res).clientId, f, format);
    res.status(202).location(`/v1/audit/exports/${exportId}`).json({ exportId, status: 'queued' });
  });

  router.get('/v1/audit/exports/:id', async (req, res) => {
    res.json(await exportService.status(parse(exportParam, req.params).id));
  });

  router.get('/v1/audit/exports/:id/manifest', async (req, res) => {
    res.type('application/jose').send(await exportService.manifest(parse(exportParam, req.params).id));
  });

  router.get('/v1/audit/exports/:id/download', async (req, res) => {
    const { id } = parse(exportParam, req.params);
    const file = await exportService.fileInfo(id);
    res.setHeader('content-type', file.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson');
    res.setHeader('content-length', String(file.bytes));
    res.setHeader('content-disposition', `attachment; filename="optgate-audit-${id}.${file.format}"`);
    res.setHeader('x-content-sha256', file.sha256);
    // pipeline ends the response, and stops reading chunks when the caller hangs up (which is not an error of ours).
    await pipeline(Readable.from(exportService.download(id)), res).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw err;
    });
  });

  return router;
}
