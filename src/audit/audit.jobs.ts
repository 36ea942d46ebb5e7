import { UnrecoverableError } from 'bullmq';
import type { Logger } from '../platform/logger';
import { type JobDefinition, job } from '../platform/queues';
import type { AuditService } from './audit.service';
import type { ExportService } from './export.service';

export interface AuditJobDeps {
  readonly audit: AuditService;
  readonly exports: ExportService;
  readonly logger: Logger;
  readonly checkpointIntervalMs: number;
  /** How often expired export files are looked for (the consent expiry sweep's interval). */
  readonly expirySweepIntervalMs: number;
}

/** Signs the chain head every interval, runs exports, and deletes expired export files. */
export function auditJobs(d: AuditJobDeps): JobDefinition[] {
  return [
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
  ];
}
