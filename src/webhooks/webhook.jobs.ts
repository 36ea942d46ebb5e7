import type { Logger } from '../platform/logger';
import { type JobDefinition, job } from '../platform/queues';
import type { WebhookService } from './webhook.service';

export interface WebhookJobDeps {
  readonly webhooks: WebhookService;
  readonly logger: Logger;
  readonly tickMs: number;
  readonly expiringScanMs: number;
}

/**
 * Periodic jobs: every tick, the dispatcher turns new feed events into deliveries (and attempts them at once) and the
 * deliverer attempts what is due (retries); less often, the grants coming to their end are announced. Retries are
 * scheduled in PostgreSQL (`next_attempt_at`), not as BullMQ retries: a delivery's place in its endpoint's order, and
 * its schedule over more than a day, must outlive Redis.
 */
export function webhookJobs(d: WebhookJobDeps): JobDefinition[] {
  return [
    job({
      queue: 'webhook-dispatch',
      schedule: { id: 'webhook-dispatch', everyMs: d.tickMs, data: { scheduledBy: 'scheduler' } },
      handler: async () => {
        const created = await d.webhooks.dispatch();
        if (!created) return { created, attempted: 0 };
        d.logger.debug({ created }, 'webhook deliveries created');
        // New deliveries go out at once, in the same run, rather than a tick later: a revocation reaches a receiver
        // within about one tick of its commit.
        return { created, attempted: await d.webhooks.deliverDue() };
      },
    }),
    job({
      queue: 'webhook-deliver',
      schedule: { id: 'webhook-deliver', everyMs: d.tickMs, data: { scheduledBy: 'scheduler' } },
      handler: async () => ({ attempted: await d.webhooks.deliverDue() }),
    }),
    job({
      queue: 'webhook-expiring',
      schedule: { id: 'webhook-expiring', everyMs: d.expiringScanMs, data: { scheduledBy: 'scheduler' } },
      handler: async () => ({ announced: await d.webhooks.announceExpiring() }),
    }),
  ];
}
