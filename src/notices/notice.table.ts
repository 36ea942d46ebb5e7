import type { ColumnType, Generated, Selectable } from 'kysely';
import type { NoticeDeliveryChannel } from '../platform/vocabulary';

/** One notice version given to one subscriber (append-only: migration 0014). */
export interface NoticeDeliveryTable {
  /** bigint, returned as a string by pg: orders an account's deliveries. */
  seq: Generated<string>;
  delivery_id: string;
  account_id: string;
  notice_version: string;
  notice_sha256: string;
  channel: NoticeDeliveryChannel;
  /** Who gave it: required for point_of_sale and call_center. */
  staff_id: string | null;
  /** The calling client (the token's `sub`). */
  client_id: string;
  delivered_at: ColumnType<Date, Date, never>;
  recorded_at: ColumnType<Date, Date, never>;
  request_id: string | null;
}

export type NoticeDeliveryRow = Selectable<NoticeDeliveryTable>;
