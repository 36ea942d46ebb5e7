import type { ColumnType, Generated, Selectable } from 'kysely';
import type { ActorType, Channel, ConsentEventKind, ConsentState, VerificationMethod } from '../platform/vocabulary';

export interface ConsentEventTable {
  /** bigint: returned as a string by pg. Orders the change feed. */
  id: Generated<string>;
  event_id: string;
  account_id: string;
  purpose: string;
  category: string;
  kind: ConsentEventKind;
  actor_type: ActorType;
  actor_id: string | null;
  channel: Channel;
  client_id: string | null;
  notice_version: string;
  notice_sha256: string;
  occurred_at: Date;
  expires_at: Date | null;
  /** A grant for a purpose that names its recipients: the registry ids it covers. */
  recipients: string[] | null;
  /** Staff acting on the subscriber's word: how they verified who they spoke to, and the call or ticket. */
  verification: VerificationMethod | null;
  reference: string | null;
  /** A change the subscriber made in the portal while their browser sent Global Privacy Control. */
  under_gpc: ColumnType<boolean, boolean | undefined, never>;
  request_id: string | null;
  ip_hash: string | null;
  user_agent_hash: string | null;
  /** The receipt of the act that recorded this event (null: recorded before receipts were kept, or by the system). */
  receipt_id: ColumnType<string | null, string | null | undefined, never>;
}

export interface ConsentStateTable {
  account_id: string;
  purpose: string;
  category: string;
  state: ConsentState;
  /** The event that set this state: for a grant in force, the granted or renewed event that decisions cite. */
  consent_id: string;
  notice_version: string;
  granted_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  updated_at: Date;
  /** A grant in force for a purpose that names its recipients: the registry ids it covers. */
  recipients: string[] | null;
  last_event_id: ColumnType<string, string | number | bigint, string | number | bigint>;
}

/** One act's signed receipt, kept as signed: every download returns these bytes. Append-only. */
export interface ConsentReceiptTable {
  receipt_id: string;
  account_id: string;
  recorded_at: Date;
  /** The act's events, in the order they were recorded. */
  event_ids: string[];
  jws: string;
}

export type ConsentEventRow = Selectable<ConsentEventTable>;
export type ConsentStateRow = Selectable<ConsentStateTable>;
export type ConsentReceiptRow = Selectable<ConsentReceiptTable>;
