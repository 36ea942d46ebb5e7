import type { ColumnType, Generated, Selectable } from 'kysely';

/** A client's receiver (migration 0018). */
export interface WebhookEndpointTable {
  id: string;
  /** The owning client: the token's `sub`. Another client's endpoint does not exist for it. */
  client_id: string;
  url: string;
  events: string[];
  description: string;
  /** `whsec_` + base64: the Standard Webhooks signing secret. Shown once, never logged. */
  secret: string;
  created_at: ColumnType<Date, Date, never>;
  deleted_at: Date | null;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'dead';

/** One event for one endpoint; `seq` orders an endpoint's deliveries. */
export interface WebhookDeliveryTable {
  /** bigint, returned as a string by pg. */
  seq: Generated<string>;
  /** The `webhook-id` header: the same on every attempt, so that a receiver can drop repeats. */
  id: string;
  endpoint_id: string;
  event: string;
  /** The change feed's `seq` of the event; null for a test event. */
  feed_seq: string | null;
  payload: ColumnType<unknown, string, string>;
  status: Generated<DeliveryStatus>;
  attempts: Generated<number>;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: Date;
  /** Claimed by an attempt in flight until then. */
  locked_until: Date | null;
  created_at: ColumnType<Date, Date, never>;
  completed_at: Date | null;
}

/** How far the dispatcher has read the change feed: one row. */
export interface WebhookCursorTable {
  id: number;
  feed_seq: string;
}

/** A consent whose coming expiry was announced: `consent.expiring` goes out once per consent. */
export interface WebhookExpiringTable {
  consent_id: string;
  announced_at: Date;
}

export type WebhookEndpointRow = Selectable<WebhookEndpointTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveryTable>;
