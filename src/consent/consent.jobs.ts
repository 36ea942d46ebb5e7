import type { Logger } from '../platform/logger';
import { type JobDefinition, job } from '../platform/queues';
import type { ConsentService } from './consent.service';

export interface ConsentJobDeps {
  readonly consents: ConsentService;
  readonly logger: Logger;
  readonly expirySweepIntervalMs: number;
}

/** Marks lapsed opt-ins expired, every interval: decisions never wait for it, the history and the feed show it. */
export function consentJobs(d: ConsentJobDeps): JobDefinition[] {
  return [
    job({
      queue: 'consent-expiry',
      schedule: { id: 'consent-expiry-sweep', everyMs: d.expirySweepIntervalMs, data: { scheduledBy: 'scheduler' } },
      handler: async () => {
        const expired = await d.consents.markExpired();
        if (expired) d.logger.info({ expired }, 'marked lapsed opt-ins expired');
        return { expired };
      },
    }),
  ];
}
