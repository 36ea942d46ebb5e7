import { z } from 'zod';
import type { Brand } from '../platform/config/brand';
import type { Catalog } from '../platform/config/catalog';
import {
  type ActorType,
  type Channel,
  type ConsentEventKind,
  consentEventKind,
  type VerificationMethod,
  verificationMethod,
} from '../platform/vocabulary';

/**
 * The consent receipt: one per act (a save in the portal, revoke-all, an API call, a staff change, the Global Privacy
 * Control signal honoured), listing every item the act changed; one per event for the system's expiries and lapses
 * and for events recorded before receipts were kept. Its payload follows the Kantara Initiative Consent Receipt
 * Specification v1.1 (the field names) and ISO/IEC TS 27560 (a consent record: notice, controller, purposes, data
 * categories, recipients, withdrawal, who acted), with a machine-readable `changes` list of our own. It is signed once,
 * when the act is recorded (a JWS of type RECEIPT_TYP), and stored: every download returns the same bytes.
 *
 * Deterministic: the payload depends only on the act, the catalog, the brand and the settings; its keys are always in
 * the order below, and lists follow the order in which the events were recorded. docs/portal.md describes each field.
 */

/** Kantara Consent Receipt Specification v1.1. */
export const RECEIPT_VERSION = 'KI-CR-v1.1.0';

/**
 * A coarse category per purpose (Kantara's `purposeCategory`), in a vocabulary of our own: advertising, sale,
 * disclosure, analytics. A purpose the table does not know is `disclosure` when it names recipients, else `other`.
 * (It belongs in the catalog, with the purpose; until it is there, it is here.)
 */
const PURPOSE_CATEGORIES: Readonly<Record<string, string>> = {
  ad_targeting: 'advertising',
  data_sale: 'sale',
  third_party_disclosure: 'disclosure',
  permit_access: 'disclosure',
  product_analytics: 'analytics',
};

/** How the act reached us: a channel, the Global Privacy Control signal, or the system (an expiry, a closure). */
export const collectionMethod = z.enum(['portal', 'api', 'call_center', 'point_of_sale', 'gpc_signal', 'system']);

/**
 * `EXPLICIT`: the subscriber's own act (in the portal, or through staff on their word); `BROWSER_SIGNAL`: the Global
 * Privacy Control signal, a standing opt-out the browser sends; `NONE`: no act of the subscriber (a term ran out, the
 * account was closed).
 */
export const consentType = z.enum(['EXPLICIT', 'BROWSER_SIGNAL', 'NONE']);

const isoTime = z.iso.datetime();
const recipient = z.strictObject({ id: z.string(), legalName: z.string() });

export const receiptPayloadSchema = z.strictObject({
  version: z.literal(RECEIPT_VERSION),
  /** ISO 3166-2 code of the law the controller answers to (brand.json `jurisdiction`). */
  jurisdiction: z.string(),
  /** Kantara: seconds since the epoch. */
  consentTimestamp: z.int(),
  /** The same instant to the millisecond: the events' `occurredAt`. */
  recordedAt: isoTime,
  collectionMethod,
  consentReceiptID: z.uuid(),
  /** The language the subscriber used the portal in; `en` for the other channels. */
  language: z.string(),
  /** The account id. */
  piiPrincipalId: z.string(),
  piiControllers: z.array(
    z.strictObject({
      piiController: z.string(),
      onBehalf: z.boolean(),
      contact: z.string(),
      address: z.string(),
      email: z.string(),
      phone: z.string(),
      piiControllerUrl: z.url(),
    }),
  ),
  policyUrl: z.url(),
  notice: z.strictObject({ version: z.string(), sha256: z.string(), url: z.url() }),
  services: z.array(
    z.strictObject({
      service: z.string(),
      purposes: z.array(
        z.strictObject({
          purposeId: z.string(),
          purpose: z.string(),
          purposeCategory: z.array(z.string()),
          consentType,
          /** The categories of information this act changed for the purpose, by their catalog labels. */
          piiCategory: z.array(z.string()),
          primaryPurpose: z.boolean(),
          termination: z.string(),
          thirdPartyDisclosure: z.boolean(),
          /** The legal names of the recipients the act's opt-ins for this purpose cover. */
          thirdPartyName: z.array(z.string()),
        }),
      ),
    }),
  ),
  sensitive: z.boolean(),
  /** The sensitive categories the act changed, by their catalog labels. */
  spiCat: z.array(z.string()),
  withdrawal: z.strictObject({ url: z.url(), phone: z.string(), email: z.string() }),
  actor: z.strictObject({
    type: z.enum(['subscriber', 'staff', 'gpc', 'system']),
    verification: verificationMethod.optional(),
    reference: z.string().optional(),
  }),
  /** An explicit choice made in the portal while the browser sent Global Privacy Control. */
  underGpc: z.literal(true).optional(),
  changes: z
    .array(
      z.strictObject({
        eventId: z.uuid(),
        purpose: z.string(),
        category: z.string(),
        change: consentEventKind,
        expiresAt: isoTime.optional(),
        recipients: z.array(recipient).optional(),
        sensitive: z.boolean(),
      }),
    )
    .min(1),
});
export type ReceiptPayload = z.infer<typeof receiptPayloadSchema>;

/** What the receipts of this service say about the controller, and how a subscriber withdraws. */
export interface ReceiptSettings {
  readonly brand: Brand;
  /** The portal's base URL (PORTAL_BASE_URL). */
  readonly portalUrl: string;
}

/** One act, as the receipt needs it. */
export interface ReceiptAct {
  readonly receiptId: string;
  readonly accountId: string;
  readonly recordedAt: Date;
  readonly language: string;
  readonly channel: Channel;
  readonly actor: { readonly type: ActorType; readonly id?: string };
  readonly verification?: VerificationMethod;
  readonly reference?: string;
  readonly underGpc?: boolean;
  readonly notice: { readonly version: string; readonly sha256: string };
  readonly events: readonly {
    readonly eventId: string;
    readonly purpose: string;
    readonly category: string;
    readonly kind: ConsentEventKind;
    readonly expiresAt?: Date;
    readonly recipients?: readonly string[];
  }[];
}

const TERMINATION =
  'An opt-in ends at its expiresAt (see changes) unless it is renewed, or sooner when it is withdrawn (see ' +
  'withdrawal); an opt-out stands until it is withdrawn.';

/** The receipt of one act: a pure function of the act, the catalog and the settings. */
export function receiptPayload(act: ReceiptAct, catalog: Catalog, s: ReceiptSettings): ReceiptPayload {
  const { brand } = s;
  const gpc = act.actor.id === 'gpc';
  const system = act.actor.type === 'system';
  const noticeUrl = `${s.portalUrl}/notice/${encodeURIComponent(act.notice.version)}`;
  const categoryLabel = (id: string) => catalog.categories.get(id)?.label ?? id;
  const legalName = (id: string) => catalog.recipients.get(id)?.legalName ?? id;
  const changes = act.events.map((e) => ({
    eventId: e.eventId,
    purpose: e.purpose,
    category: e.category,
    change: e.kind,
    ...(e.expiresAt ? { expiresAt: e.expiresAt.toISOString() } : {}),
    ...(e.recipients ? { recipients: e.recipients.map((id) => ({ id, legalName: legalName(id) })) } : {}),
    sensitive: catalog.sensitive.has(e.category),
  }));
  const purposeIds = [...new Set(act.events.map((e) => e.purpose))];
  const purposes = purposeIds.map((purposeId) => {
    const mine = act.events.filter((e) => e.purpose === purposeId);
    const names = new Set(
      mine.flatMap((e) => (e.kind === 'granted' || e.kind === 'renewed' ? e.recipients : []) ?? []),
    );
    const purpose = catalog.purposes.get(purposeId);
    return {
      purposeId,
      purpose: purpose?.label ?? purposeId,
      purposeCategory: [PURPOSE_CATEGORIES[purposeId] ?? (purpose?.recipientKinds ? 'disclosure' : 'other')],
      consentType: system ? ('NONE' as const) : gpc ? ('BROWSER_SIGNAL' as const) : ('EXPLICIT' as const),
      piiCategory: [...new Set(mine.map((e) => categoryLabel(e.category)))],
      primaryPurpose: false,
      termination: TERMINATION,
      thirdPartyDisclosure: purpose?.recipientKinds !== undefined,
      thirdPartyName: [...names].map(legalName),
    };
  });
  const sensitive = [...new Set(act.events.map((e) => e.category).filter((c) => catalog.sensitive.has(c)))];
  return {
    version: RECEIPT_VERSION,
    jurisdiction: brand.jurisdiction,
    consentTimestamp: Math.floor(act.recordedAt.getTime() / 1000),
    recordedAt: act.recordedAt.toISOString(),
    collectionMethod: gpc ? 'gpc_signal' : act.channel,
    consentReceiptID: act.receiptId,
    language: act.language,
    piiPrincipalId: act.accountId,
    piiControllers: [
      {
        piiController: brand.legalName,
        onBehalf: false,
        contact: brand.name,
        address: brand.contact.address.join(', '),
        email: brand.contact.email,
        phone: brand.contact.phone,
        piiControllerUrl: brand.policyUrl ?? s.portalUrl,
      },
    ],
    policyUrl: brand.policyUrl ?? noticeUrl,
    notice: { version: act.notice.version, sha256: act.notice.sha256, url: noticeUrl },
    services: [{ service: brand.name, purposes }],
    sensitive: sensitive.length > 0,
    spiCat: sensitive.map(categoryLabel),
    withdrawal: { url: `${s.portalUrl}/choices`, phone: brand.contact.phone, email: brand.contact.email },
    actor: {
      type: gpc ? 'gpc' : act.actor.type,
      ...(act.verification ? { verification: act.verification } : {}),
      ...(act.reference ? { reference: act.reference } : {}),
    },
    ...(act.underGpc ? { underGpc: true as const } : {}),
    changes,
  };
}

/** The signed payload of a receipt's JWS, exactly as signed (the bytes the `.json` download returns). */
export function payloadBytesOf(jws: string): string {
  const payload = jws.split('.')[1];
  if (payload === undefined) throw new Error('not a compact JWS');
  return Buffer.from(payload, 'base64url').toString('utf8');
}
