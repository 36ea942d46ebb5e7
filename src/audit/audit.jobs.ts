import type { Logger } from '../platform/logger';
import type { Queues } from '../platform/queues';
import type { AuditService } from './audit.service';
import type { ExportService } from './export.service';

/**
 * Signs the chain head every `intervalMs` (a BullMQ job scheduler: one run per tick across instances), and runs
 * exports.
 */
export async function startAuditWorkers(
  queues: Queues,
  audit: AuditService,
  exportService: ExportService,
  intervalMs: number,
  logger: Logger,
): Promise<void> {
  queues.work('audit-checkpoint', async () => {
    const checkpoint = await audit.checkpoint();
    if (checkpoint) logger.debug({ seq: checkpoint.seq }, 'audit checkpoint signed');
    return checkpoint ? { seq: checkpoint.seq } : {};
  });
  queues.work('audit-export', async (job) => {
    const { rows } = await exportService.run(job, job.data.exportId);
    logger.info({ exportId: job.data.exportId, rows }, 'audit export written');
    return { rows };
  });
  await queues
    .queue('audit-checkpoint')
    .upsertJobScheduler(
      'audit-checkpoint',
      { every: intervalMs },
      { name: 'checkpoint', data: { scheduledBy: 'scheduler' } },
    );
}
