import { z } from 'zod';
import type { WebhookFeedItem } from '../audit';

/** The events an endpoint may subscribe to (`webhook.test` is sent on request only, to one endpoint). */
export const webhookEvent = z.enum([
  'consent.granted',
  'consent.revoked',
  'consent.expired',
  'consent.expiring',
  'consent.lapsed',
  'account.closed',
]);
export type WebhookEvent = z.infer<typeof webhookEvent>;

/**
 * What a delivery's `data` holds: no more than a pipeline needs to act (no evidence, no IP or user-agent hashes, no
 * actor). A renewal is announced as `consent.granted` with `kind: "renewed"`; `consent.expiring` has `kind: "expiring"`
 * and the grant's event id (its consent id).
 */
export type EventData =
  | {
      readonly accountId: string;
      readonly purpose: string;
      readonly category: string;
      readonly kind: string;
      readonly eventId: string;
      readonly occurredAt: string;
      readonly expiresAt?: string;
      readonly recipients?: readonly string[];
    }
  | { readonly accountId: string; readonly occurredAt: string }
  | { readonly endpointId: string; readonly message: string };

/** The body of every delivery: signed as it is sent. */
export interface DeliveryBody {
  /** The delivery id: also the `webhook-id` header. */
  readonly id: string;
  readonly type: WebhookEvent | 'webhook.test';
  /** The change feed's sequence number of the event (null for a test). */
  readonly seq: number | null;
  readonly timestamp: string;
  readonly data: EventData;
}

const CONSENT_EVENTS: Readonly<Partial<Record<string, WebhookEvent>>> = {
  granted: 'consent.granted',
  renewed: 'consent.granted',
  revoked: 'consent.revoked',
  expired: 'consent.expired',
  lapsed: 'consent.lapsed',
};

/** The webhook event a feed item is, with its data; undefined for kinds no webhook announces (declined, opt-outs). */
export function eventOf(item: WebhookFeedItem): { event: WebhookEvent; data: EventData } | undefined {
  if (item.type === 'account_closed') {
    return { event: 'account.closed', data: { accountId: item.accountId, occurredAt: item.occurredAt } };
  }
  const event = CONSENT_EVENTS[item.kind];
  if (!event) return undefined;
  return {
    event,
    data: {
      accountId: item.accountId,
      purpose: item.purpose,
      category: item.category,
      kind: item.kind,
      eventId: item.eventId,
      occurredAt: item.occurredAt,
      ...(item.expiresAt ? { expiresAt: item.expiresAt } : {}),
      ...(item.recipients ? { recipients: item.recipients } : {}),
    },
  };
}
