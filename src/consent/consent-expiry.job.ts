import type { Logger } from '../platform/logger';
import type { Queues } from '../platform/queues';
import type { ConsentService } from './consent.service';

const SCHEDULER_ID = 'consent-expiry-sweep';

/** A repeatable job on every instance's queue; BullMQ runs each tick once, whichever instance takes it. */
export async function startExpirySweep(
  queues: Queues,
  consents: ConsentService,
  intervalMs: number,
  logger: Logger,
): Promise<void> {
  queues.work('consent-expiry', async () => {
    const expired = await consents.markExpired();
    if (expired) logger.info({ expired }, 'marked lapsed opt-ins expired');
    return { expired };
  });
  await queues
    .queue('consent-expiry')
    .upsertJobScheduler(SCHEDULER_ID, { every: intervalMs }, { name: 'sweep', data: { scheduledBy: 'scheduler' } });
}
