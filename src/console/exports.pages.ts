import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Response, Router } from 'express';
import { z } from 'zod';
import type { ExportFilters } from '../audit';
import { AppError } from '../platform/errors';
import type { ConsoleDeps, ConsoleKit } from './console.router';
import { purposeLabel } from './labels';
import { questionFilters, questionSchema } from './question.pages';

/** How many exports the list shows: the latest. */
const RECENT = 50;
const idParam = z.strictObject({ id: z.uuid() });

/** The names the files download under: the verify command the page prints uses them as they are. */
export const exportFileNames = (id: string, format: string) => ({
  file: `optgate-export-${id}.${format}`,
  manifest: `optgate-export-${id}.manifest.jws`,
  jwks: 'jwks.json',
});

/** The console's pages for exports started from the console (/console/exports…). */
export function exportPages(d: ConsoleDeps, kit: ConsoleKit): Router {
  const router = Router();
  const question = questionSchema(d.catalog);
  const exportForm = z.object({ format: z.enum(['ndjson', 'csv']).default('ndjson') });

  /** Filters in words, for the list and the export's page. */
  const filtersView = (f: ExportFilters) => ({
    types: f.types ?? null,
    accountId: f.accountId ?? null,
    purpose: f.purpose ?? null,
    purposeLabel: f.purpose ? (purposeLabel(d.catalog, f.purpose).key ?? null) : null,
    outcome: f.outcome ?? null,
    from: f.from ? new Date(f.from) : null,
    // `to` is exclusive: the page shows the last moment included.
    until: f.to ? new Date(new Date(f.to).getTime() - 1) : null,
  });

  const idOf = (params: unknown) => {
    const parsed = idParam.safeParse(params);
    if (!parsed.success) throw new AppError('not-found', 'no such export');
    return parsed.data.id;
  };

  // Export the answer of the regulator's question: exactly its decision records, as NDJSON or CSV.
  router.post('/exports', ...kit.signedInForm, kit.complianceOnly, async (req, res) => {
    const { _csrf, format: rawFormat, ...asked } = req.body as Record<string, unknown>;
    const parsed = question.safeParse(asked);
    const format = exportForm.safeParse({ format: rawFormat });
    if (!parsed.success || !format.success) {
      const issues = [...(parsed.error?.issues ?? []), ...(format.error?.issues ?? [])];
      const fields = [...new Set(issues.map((i) => String(i.path[0] ?? 'form')))];
      return kit.render(
        res,
        'message.njk',
        {
          title: 'The export cannot start',
          message: `Something in the question is not valid (${fields.join(', ')}). Ask it again, then export.`,
        },
        422,
      );
    }
    const staff = kit.staffOf(res);
    let id: string;
    try {
      id = await d.exports.request(staff.staffId, questionFilters(parsed.data), format.data.format, {
        role: staff.role,
      });
    } catch (err) {
      if (err instanceof AppError && (err.type === 'too-many-requests' || err.type === 'unavailable')) {
        if (err.headers) res.set(err.headers);
        return kit.render(
          res,
          'exports-busy.njk',
          { active: 'exports', tooMany: err.type === 'too-many-requests' },
          err.status,
        );
      }
      throw err;
    }
    res.redirect(303, `/console/exports/${id}`);
  });

  router.get('/exports', ...kit.signedIn, kit.complianceOnly, async (_req, res) => {
    const exports = (await d.exports.recent(RECENT)).map((e) => ({ ...e, filters: filtersView(e.filters) }));
    kit.render(res, 'exports.njk', { active: 'exports', exports, limit: RECENT });
  });

  router.get('/exports/:id', ...kit.signedIn, kit.complianceOnly, async (req, res) => {
    const id = idOf(req.params);
    const e = await d.exports.status(id);
    const names = exportFileNames(id, e.format);
    kit.render(res, 'export.njk', {
      active: 'exports',
      e: { ...e, filters: filtersView(e.filters) },
      names,
      command: `npx optgate audit verify ${names.file} --manifest ${names.manifest} --jwks ${names.jwks}`,
    });
  });

  // The file, streamed as the API streams it; its download is recorded as a view of the account's data.
  /** A file not there (yet, or any more): a page that says why, with the status of the error (409, 410). */
  const unavailable = (res: Response, err: unknown) => {
    if (!(err instanceof AppError) || (err.status !== 409 && err.status !== 410)) throw err;
    kit.render(res, 'message.njk', { title: 'The file is not available', message: err.detail }, err.status);
  };

  router.get('/exports/:id/file', ...kit.signedIn, kit.complianceOnly, async (req, res) => {
    const id = idOf(req.params);
    const file = await d.exports.fileInfo(id).catch((err: unknown) => unavailable(res, err));
    if (!file) return;
    const { filters } = await d.exports.status(id);
    await kit.recordView(res, 'export', filters.accountId ?? null, { exportId: id });
    sendFile(res, {
      type: file.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson',
      name: exportFileNames(id, file.format).file,
      bytes: file.bytes,
      sha256: file.sha256,
    });
    await pipeline(Readable.from(d.exports.download(id), { highWaterMark: 1 }), res).catch(
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw err;
      },
    );
  });

  router.get('/exports/:id/manifest.jws', ...kit.signedIn, kit.complianceOnly, async (req, res) => {
    const id = idOf(req.params);
    const manifest = await d.exports.manifest(id).catch((err: unknown) => unavailable(res, err));
    if (!manifest) return;
    const { format } = await d.exports.status(id);
    res.setHeader('content-type', 'application/jose');
    res.setHeader('content-disposition', `attachment; filename="${exportFileNames(id, format).manifest}"`);
    res.send(manifest);
  });

  return router;
}

function sendFile(res: Response, f: { type: string; name: string; bytes: number; sha256: string }) {
  res.setHeader('content-type', f.type);
  res.setHeader('content-length', String(f.bytes));
  res.setHeader('content-disposition', `attachment; filename="${f.name}"`);
  res.setHeader('x-content-sha256', f.sha256);
}
