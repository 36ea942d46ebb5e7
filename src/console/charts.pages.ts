import { Router } from 'express';
import { z } from 'zod';
import { parse } from '../platform/http/validate';
import { chartViews, dayLabel, formatCount } from './charts';
import type { ConsoleDeps, ConsoleKit } from './console.router';

const DAY = 86_400_000;
export const PERIODS = [7, 30, 90] as const;
const chartsQuery = z.object({ days: z.enum(['7', '30', '90']).default('30') });

/**
 * The console's pages for charts (/console/charts, compliance only): decisions per day by outcome, denied categories
 * by reason, allow rate per pipeline, grants and revocations per week. Read from the log's hourly counts
 * (src/audit/rollups.ts), never the log itself; the page says how far those counts go.
 */
export function chartPages(d: ConsoleDeps, kit: ConsoleKit): Router {
  const router = Router();

  router.get('/charts', ...kit.signedIn, kit.complianceOnly, async (req, res) => {
    const days = Number(parse(chartsQuery, req.query).days);
    const now = d.clock();
    const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    const from = new Date(today - (days - 1) * DAY);
    const [counts, state] = await Promise.all([
      d.audit.rollupCounts(from, new Date(today + DAY)),
      d.audit.rollupState(),
    ]);
    const charts = chartViews(counts, { firstDay: from.toISOString().slice(0, 10), days, pipelines: d.pipelines });
    kit.render(res, 'charts.njk', {
      active: 'charts',
      periods: PERIODS.map((p) => ({ days: p, label: `Last ${p} days`, selected: p === days })),
      freshness: freshness(state),
      charts,
    });
  });

  return router;
}

/** How far the counts go, in words. */
function freshness(s: { lastSeq: number; lastRecordedAt?: Date; headSeq: number }): string {
  const behind = Math.max(0, s.headSeq - s.lastSeq);
  const pending = behind
    ? ` ${formatCount(behind)} ${behind === 1 ? 'record' : 'records'} logged since then ${
        behind === 1 ? 'is' : 'are'
      } not counted yet.`
    : '';
  if (!s.lastRecordedAt) {
    return s.headSeq
      ? `Nothing has been counted yet: the counts are brought up to date by a background job.${pending}`
      : 'The audit log holds no records yet.';
  }
  const at = s.lastRecordedAt.toISOString();
  return (
    `Counted up to ${at.slice(11, 16)} UTC on ${dayLabel(at.slice(0, 10), true)} (the log's record ` +
    `${formatCount(s.lastSeq)}); a background job brings the counts up to date at a regular interval.${pending}`
  );
}
