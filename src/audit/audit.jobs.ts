import { UnrecoverableError } from 'bullmq';
import type { Logger } from '../platform/logger';
import { type JobDefinition, job } from '../platform/queues';
import type { AuditArchiver } from './archive';
import type { AuditService } from './audit.service';
import type { ExportService } from './export.service';
import type { AuditIntegrity } from './integrity';

export interface AuditJobDeps {
  readonly audit: AuditService;
  readonly exports: ExportService;
  readonly archiver: AuditArchiver;
  readonly logger: Logger;
  readonly checkpointIntervalMs: number;
  /** How often expired export files are looked for (the consent expiry sweep's interval). */
  readonly expirySweepIntervalMs: number;
  /** The scheduled verification of the log (optional: absent, no audit-verify job). */
  readonly integrity?: AuditIntegrity;
  readonly verifyIntervalMs?: number;
  /**
   * Queues another verification run after `delayMs`: a run stopped by its bound before the head continues soon (it
   * paused as long as it ran), not an interval later, so that verification keeps up with the log.
   */
  readonly verifyAgain?: (afterSeq: number, delayMs: number) => Promise<unknown>;
  /** How often the charts' hourly counts are brought up to date (AUDIT_ROLLUP_INTERVAL_MS). */
  readonly rollupIntervalMs: number;
}

/** How often the retention job looks for months to archive (and partitions to create). */
const RETENTION_EVERY_MS = 3_600_000;

/**
 * Signs the chain head every interval, runs exports, deletes expired export files, archives old months, verifies the
 * log a part at a time, counts the log for the console's charts.
 */
export function auditJobs(d: AuditJobDeps): JobDefinition[] {
  return [
    ...(d.integrity ? [verifyJob(d, d.integrity)] : []),
    job({
      queue: 'audit-checkpoint',
      schedule: { id: 'audit-checkpoint', everyMs: d.checkpointIntervalMs, data: { scheduledBy: 'scheduler' } },
      handler: async () => {
        const checkpoint = await d.audit.checkpoint();
        if (checkpoint) d.logger.debug({ seq: checkpoint.seq }, 'audit checkpoint signed');
        return checkpoint ? { seq: checkpoint.seq } : {};
      },
    }),
    job({
      queue: 'audit-export',
      handler: async (j) => {
        // An export the database does not hold (Redis outlived a restored or recreated database): nothing to retry.
        if (!(await d.exports.exists(j.data.exportId))) throw new UnrecoverableError('no such export in the database');
        const { rows } = await d.exports.run(j, j.data.exportId);
        d.logger.info({ exportId: j.data.exportId, rows }, 'audit export written');
        return { rows };
      },
    }),
    job({
      queue: 'audit-export-expiry',
      schedule: { id: 'audit-export-expiry', everyMs: d.expirySweepIntervalMs, data: { scheduledBy: 'scheduler' } },
      handler: async () => {
        const expired = await d.exports.expire();
        if (expired) d.logger.info({ expired }, 'expired audit export files deleted');
        return { expired };
      },
    }),
    job({
      queue: 'audit-retention',
      schedule: { id: 'audit-retention', everyMs: RETENTION_EVERY_MS, data: { scheduledBy: 'scheduler' } },
      handler: async () => {
        const archived = await d.archiver.run();
        for (const a of archived)
          d.logger.info({ period: a.period, rows: a.rows, file: a.file }, 'audit month archived');
        return { archived: archived.map((a) => a.period) };
      },
    }),
    job({
      queue: 'audit-rollup',
      schedule: { id: 'audit-rollup', everyMs: d.rollupIntervalMs, data: { scheduledBy: 'scheduler' } },
      handler: async () => {
        const run = await d.audit.rollUp();
        if (run)
          d.logger.debug({ from: run.from, to: run.to, counted: run.counted }, 'audit records counted for charts');
        return run ?? {};
      },
    }),
  ];
}

/** audit-verify: one bounded, recorded run from where the last intact one stopped (src/audit/integrity.ts). */
function verifyJob(d: AuditJobDeps, integrity: AuditIntegrity): JobDefinition {
  return job({
    queue: 'audit-verify',
    schedule: { id: 'audit-verify', everyMs: d.verifyIntervalMs ?? 3_600_000, data: { scheduledBy: 'scheduler' } },
    handler: async () => {
      // A run that cannot finish is recorded as an error, not retried at once: the next run is an interval away.
      const run = await integrity.run('job');
      const fields = { fromSeq: run.fromSeq, toSeq: run.toSeq, records: run.recordsChecked, result: run.result };
      if (run.result === 'intact') d.logger.info(fields, 'audit log verified');
      else d.logger.error({ ...fields, problem: run.problem }, 'audit log verification failed');
      if (run.result === 'intact' && !run.reachedHead && d.verifyAgain) {
        await d.verifyAgain(run.toSeq, run.finishedAt.getTime() - run.startedAt.getTime());
      }
      return fields;
    },
  });
}
