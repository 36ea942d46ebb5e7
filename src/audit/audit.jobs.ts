import type { Logger } from '../platform/logger';
import { type JobDefinition, job } from '../platform/queues';
import type { AuditService } from './audit.service';
import type { ExportService } from './export.service';

export interface AuditJobDeps {
  readonly audit: AuditService;
  readonly exports: ExportService;
  readonly logger: Logger;
  readonly checkpointIntervalMs: number;
}

/** Signs the chain head every interval, and runs exports. */
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
        const { rows } = await d.exports.run(j, j.data.exportId);
        d.logger.info({ exportId: j.data.exportId, rows }, 'audit export written');
        return { rows };
      },
    }),
  ];
}
