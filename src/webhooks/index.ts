/** The webhooks component's public interface: signed deliveries of consent events to clients' receivers. */

export { urlPolicy } from './url-guard';
export { webhookJobs } from './webhook.jobs';
export { webhookRouter } from './webhook.router';
export { webhookRoutes } from './webhook.schema';
export { WebhookService } from './webhook.service';
