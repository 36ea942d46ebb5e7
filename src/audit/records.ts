import { z } from 'zod';
import {
  accountId,
  accountStatus,
  actorType,
  allowReason,
  channel,
  consentEventKind,
  decisionEndpoint,
  denyReason,
  noticeDeliveryChannel,
  staffRole,
  verificationMethod,
} from '../platform/vocabulary';
import { exportFiltersSchema } from './formats';

/**
 * Every kind of audit record, as one discriminated union: what producers build (with the builders
 * below) and what consumers read (with `parseRecord`, the one parser). A field renamed in a
 * producer fails the schema, not silently the change feed: the schemas are strict.
 *
 * Times are ISO 8601 strings in UTC and integers only, because records are hashed as canonical
 * JSON (chain.ts).
 */

const isoTime = z.iso.datetime();
const uuid = z.uuid();

const decisionResult = z.discriminatedUnion('allow', [
  z.strictObject({
    category: z.string(),
    allow: z.literal(true),
    reason: allowReason,
    consentId: uuid.optional(),
    expiresAt: isoTime.optional(),
  }),
  z.strictObject({ category: z.string(), allow: z.literal(false), reason: denyReason }),
]);

/** One account judged: the request's shared fields and this account's verdict. */
export const decisionData = z.strictObject({
  decisionId: uuid,
  endpoint: decisionEndpoint,
  clientId: z.string(),
  requestId: z.string(),
  purpose: z.string(),
  categories: z.array(z.string()),
  recipient: z.string().optional(),
  reference: z.string().optional(),
  evaluatedAt: isoTime,
  validUntil: isoTime.optional(),
  results: z.array(decisionResult),
  /** The streaming filter with a record schema: the categories of the fields it passed on in the record. */
  passed: z.array(z.string()).optional(),
});

export const consentEventData = z.strictObject({
  eventId: uuid,
  kind: consentEventKind,
  purpose: z.string(),
  category: z.string(),
  channel,
  actorType,
  actorId: z.string().optional(),
  clientId: z.string().optional(),
  noticeVersion: z.string(),
  noticeSha256: z.string(),
  occurredAt: isoTime,
  expiresAt: isoTime.optional(),
  /** A grant for a purpose that names its recipients: the registry ids it covers. */
  recipients: z.array(z.string()).optional(),
  /** Staff acting on the subscriber's word: how they verified the subscriber, and the call or ticket. */
  verification: verificationMethod.optional(),
  reference: z.string().optional(),
  /** Made in the portal while the subscriber's browser sent Global Privacy Control. */
  underGpc: z.literal(true).optional(),
  /** The receipt of the act that recorded the event (events recorded before receipts were kept have none). */
  receiptId: uuid.optional(),
  requestId: z.string().optional(),
  ipHash: z.string().optional(),
  userAgentHash: z.string().optional(),
});

/** Who acted: a token subject, or `cli:<operating-system user>` for the CLI. */
const actor = z.string().min(1);

export const staffActionData = z.discriminatedUnion('action', [
  /** Written before accounts had one record per change: still read. */
  z.strictObject({
    action: z.literal('accounts_upserted'),
    actor,
    upserted: z.int().min(0),
    changed: z.int().min(0),
    closed: z.int().min(0),
  }),
  /** One account created or changed by an import (the record names the account). */
  z.strictObject({
    action: z.literal('account_changed'),
    actor,
    change: z.enum(['opened', 'closed', 'reopened', 'updated']),
    status: accountStatus,
    serviceState: z.string().nullable(),
    billingState: z.string().nullable(),
    /** The plan and monthly price (two decimals, as a string), when the account has them. */
    plan: z.string().optional(),
    monthlyPrice: z
      .string()
      .regex(/^\d+\.\d{2}$/)
      .optional(),
    /** Closing: how many opt-ins ended with it (each has its own `lapsed` consent event). */
    lapsedConsents: z.int().positive().optional(),
  }),
  z.strictObject({
    action: z.literal('export_requested'),
    actor,
    exportId: uuid,
    format: z.enum(['ndjson', 'csv']),
    filters: exportFiltersSchema,
    /** Started from the compliance console: the staff member's role (and ticket, for support). */
    role: staffRole.optional(),
    reference: z.string().optional(),
  }),
  /** A staff member signed in to the compliance console. */
  z.strictObject({ action: z.literal('console_signed_in'), actor, role: staffRole }),
  /** A one-use console sign-in link printed by `npx optgate staff-link` (development). */
  z.strictObject({
    action: z.literal('staff_link_issued'),
    actor,
    subject: z.string(),
    role: staffRole,
    ttlSeconds: z.int().positive(),
    jti: uuid,
  }),
  /**
   * A console page showed account data: the record names the account (null: data of any account, such as the
   * regulator's question asked of all accounts). `view` is the page, `filters` what was asked of it, `reference`
   * the ticket support gave.
   */
  z.strictObject({
    action: z.literal('console_viewed'),
    actor,
    role: staffRole,
    view: z.enum(['timeline', 'question', 'export']),
    reference: z.string().optional(),
    filters: z.record(z.string(), z.string()).optional(),
  }),
  z.strictObject({
    action: z.literal('token_issued'),
    actor,
    subject: z.string(),
    scopes: z.array(z.string()),
    purposes: z.array(z.string()),
    ttlSeconds: z.int().positive(),
    jti: uuid,
    /** The token may record consent changes as the subscriber (`subscriber_channel`). */
    subscriberChannel: z.literal(true).optional(),
  }),
  z.strictObject({ action: z.literal('portal_link_issued'), actor, ttlSeconds: z.int().positive(), jti: uuid }),
  /** A client registered a webhook receiver: a new place consent events are sent to. */
  z.strictObject({
    action: z.literal('webhook_registered'),
    actor,
    webhookId: uuid,
    url: z.string(),
    events: z.array(z.string()),
  }),
  z.strictObject({ action: z.literal('webhook_deleted'), actor, webhookId: uuid }),
  z.strictObject({ action: z.literal('signing_key_rotated'), actor, retiredKid: z.string(), kid: z.string() }),
  /** A notice version given to the subscriber (the record names the account); `actor` is the calling client. */
  z.strictObject({
    action: z.literal('notice_delivered'),
    actor,
    deliveryId: uuid,
    noticeVersion: z.string(),
    noticeSha256: z.string(),
    channel: noticeDeliveryChannel,
    staffId: z.string().optional(),
    deliveredAt: isoTime,
    requestId: z.string().optional(),
  }),
]);

const placed = { seq: z.int().positive(), recordedAt: isoTime };

export const auditRecordSchema = z.discriminatedUnion('type', [
  z.strictObject({
    ...placed,
    type: z.literal('decision'),
    accountId,
    outcome: z.enum(['allow', 'deny']),
    data: decisionData,
  }),
  z.strictObject({ ...placed, type: z.literal('consent_event'), accountId, outcome: z.null(), data: consentEventData }),
  z.strictObject({
    ...placed,
    type: z.literal('staff_action'),
    accountId: accountId.nullable(),
    outcome: z.null(),
    data: staffActionData,
  }),
]);

/** A record as it was hashed: its place in the chain and what it says. */
export type AuditRecord = z.infer<typeof auditRecordSchema>;
export type AuditType = AuditRecord['type'];
export type DecisionData = z.infer<typeof decisionData>;
export type ConsentEventData = z.infer<typeof consentEventData>;
export type StaffActionData = z.infer<typeof staffActionData>;
export type StaffAction = StaffActionData['action'];

/** Omit that keeps a union discriminated. */
export type OmitEach<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** What a producer records; the writer gives it its place in the chain (seq, recordedAt). */
export type AuditDraft = OmitEach<AuditRecord, 'seq' | 'recordedAt'>;

export class AuditFormatError extends Error {}

/** The one parser: a record's hashed content (canonical JSON) to its typed form. Throws AuditFormatError. */
export function parseRecord(content: string): AuditRecord {
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch {
    throw new AuditFormatError('not JSON');
  }
  const r = auditRecordSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new AuditFormatError(`not an audit record: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return r.data;
}

// ---- builders: typed in, JSON-ready out (decision records are built compactly: decisions.ts) ----

export interface ConsentEventInput extends Omit<ConsentEventData, 'occurredAt' | 'expiresAt'> {
  readonly accountId: string;
  readonly occurredAt: Date;
  readonly expiresAt?: Date;
}

export function consentEventRecord({ accountId, occurredAt, expiresAt, ...e }: ConsentEventInput): AuditDraft {
  return {
    type: 'consent_event',
    accountId,
    outcome: null,
    data: { ...e, occurredAt: occurredAt.toISOString(), expiresAt: expiresAt?.toISOString() },
  };
}

/** A staff action; `accountId` when it concerns one account (a sign-in link, an export of one account's records). */
export function staffActionRecord(data: StaffActionData, accountId: string | null = null): AuditDraft {
  return { type: 'staff_action', accountId, outcome: null, data };
}
