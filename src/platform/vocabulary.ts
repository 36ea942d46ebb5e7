import { z } from 'zod';

/**
 * The words every component shares, and that public formats (the API, audit records, exports)
 * are written in. Each list is one zod enum, so that a schema and its type cannot disagree; the
 * database's CHECK constraints hold the same lists.
 */

export const accountStatus = z.enum(['active', 'closed']);

/** What a recipient of customer information is (config/recipients.json). */
export const recipientKind = z.enum(['advertiser', 'data_broker', 'processor', 'emergency_service', 'court']);
export type RecipientKind = z.infer<typeof recipientKind>;
export type AccountStatus = z.infer<typeof accountStatus>;

/** An event in an account's consent history. */
export const consentEventKind = z.enum([
  'granted',
  'renewed',
  'revoked',
  'declined',
  'expired',
  'opted_out',
  'opt_out_withdrawn',
  'lapsed',
]);
export type ConsentEventKind = z.infer<typeof consentEventKind>;

/**
 * The current state of one account × purpose × category. `declined`: the subscriber said no and
 * never had an active opt-in; `not_opted_out`: an opt-out was withdrawn; `lapsed`: the grant ended
 * when the account was closed.
 */
export const consentState = z.enum([
  'granted',
  'revoked',
  'declined',
  'expired',
  'opted_out',
  'not_opted_out',
  'lapsed',
]);
export type ConsentState = z.infer<typeof consentState>;

export const actorType = z.enum(['subscriber', 'staff', 'system']);
export type ActorType = z.infer<typeof actorType>;

/** Roles of staff in the compliance console (the `roles` claim of their sign-in token). */
export const staffRole = z.enum(['compliance', 'support']);
export type StaffRole = z.infer<typeof staffRole>;

/** A support ticket or case reference, as staff type it (what a support user must give before seeing an account). */
export const ticketReference = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._:#/-]{0,63}$/, 'a ticket reference: 1–64 letters, digits, spaces or . _ : # / -');

export const channel = z.enum(['portal', 'api', 'call_center', 'point_of_sale', 'system']);
export type Channel = z.infer<typeof channel>;

/** How staff made sure they were speaking to the subscriber before recording a change on their word. */
export const verificationMethod = z.enum([
  'account_pin',
  'security_questions',
  'in_person_id',
  'callback',
  'signed_form',
]);
export type VerificationMethod = z.infer<typeof verificationMethod>;
/**
 * How a notice version was given to a subscriber (`POST /v1/accounts/{id}/notice-deliveries`): in a store, on the
 * phone, on paper, by e-mail, or by another of the ISP's systems (its website, its app) through the API.
 */
export const noticeDeliveryChannel = z.enum(['point_of_sale', 'call_center', 'mail', 'email', 'api']);
export type NoticeDeliveryChannel = z.infer<typeof noticeDeliveryChannel>;

export const outcome = z.enum(['allow', 'deny']);
export type Outcome = z.infer<typeof outcome>;

export const allowReason = z.enum(['exception', 'consent_granted', 'not_opted_out']);
export type AllowReason = z.infer<typeof allowReason>;

export const denyReason = z.enum([
  'exception_not_applicable',
  'no_consent',
  'consent_revoked',
  'consent_expired',
  'notice_superseded',
  'opted_out',
  'unknown_account',
  'account_closed',
  'unknown_purpose',
  'unknown_category',
  'consent_lapsed',
  'recipient_required',
  'unknown_recipient',
  'recipient_kind_not_allowed',
  'recipient_not_covered',
]);
export type DenyReason = z.infer<typeof denyReason>;

/** One category's verdict, as the decision engine gives it and the audit records it. */
export type CategoryResult =
  | {
      readonly category: string;
      readonly allow: true;
      readonly reason: AllowReason;
      readonly consentId?: string;
      readonly expiresAt?: Date;
    }
  | { readonly category: string; readonly allow: false; readonly reason: DenyReason };

/** Where a decision was asked: one account, a batch, or the streaming filter. */
export const decisionEndpoint = z.enum(['single', 'batch', 'filter']);
export type DecisionEndpoint = z.infer<typeof decisionEndpoint>;

/** An account id: 1–64 letters, digits, ".", "_" or "-" (the accounts table checks the same). */
export const ACCOUNT_ID = /^[A-Za-z0-9._-]{1,64}$/;
export const accountId = z.string().regex(ACCOUNT_ID, 'must be 1–64 letters, digits, ".", "_" or "-"');
