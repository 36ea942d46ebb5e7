import { z } from 'zod';
import { accountId, allowReason, denyReason, recipientKind } from '../platform/vocabulary';

/**
 * The wire format of the decision operations: zod only, so that the client (src/client) is typed by the same schemas
 * the service validates with, without loading the server.
 */

// Free text goes into the audit record: no control characters.
const printable = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters');
const common = {
  purpose: z.string().min(1).max(64),
  categories: z.array(z.string().min(1).max(64)).min(1).max(100),
  recipient: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .describe(
      'The registry id of whom the data goes to (GET /v1/recipients): required for data_sale, ' +
        'third_party_disclosure, permit_access, emergency_services and court_order',
    ),
  reference: printable.optional().describe('A court order reference, where the purpose needs one'),
};
export const decisionRequestSchema = z.strictObject({ accountId, ...common });
// No upper bound here: the service answers 413 past its limit.
export const batchRequestSchema = z.strictObject({
  accountIds: z.array(accountId).min(1).describe('At most 10,000 (more is 413); answered in this order'),
  ...common,
});

export const filterQuerySchema = z.strictObject({
  purpose: common.purpose,
  categories: z
    .string()
    .transform((s) => s.split(',').filter(Boolean))
    .pipe(common.categories)
    .optional()
    .describe('Comma-separated; required without a schema, refused with one (its fields say which are judged)'),
  schema: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .describe(
      'A record schema (config/schemas.json): each record is judged by the categories its fields hold. A client ' +
        'bound to a schema is judged by it without naming it, and may not name another',
    ),
  mode: z
    .enum(['redact', 'drop'])
    .optional()
    .describe(
      'With a schema: remove the fields that may not be used (redact, the default) or drop the records that hold ' +
        'any (drop)',
    ),
  accountField: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a field name')
    .optional()
    .describe("The record's field holding the account id, default accountId; with a schema, the schema names it"),
  recipient: common.recipient,
  reference: common.reference,
});

export const FILTER_TRAILERS = 'x-optgate-received, x-optgate-allowed, x-optgate-invalid, x-optgate-redacted';

const isoTime = z.iso.datetime();
const categoryResult = z.discriminatedUnion('allow', [
  z.object({
    category: z.string(),
    allow: z.literal(true),
    reason: allowReason,
    consentId: z.uuid().optional(),
    expiresAt: isoTime.optional(),
  }),
  z.object({ category: z.string(), allow: z.literal(false), reason: denyReason }),
]);

export const decisionResponseSchema = z.object({
  decisionId: z.uuid(),
  accountId,
  purpose: z.string(),
  allow: z.boolean(),
  evaluatedAt: isoTime,
  validUntil: isoTime
    .optional()
    .describe('An allow may be reused until then, never beyond: at most the reuse window (decisionReuseSeconds) away'),
  results: z.array(categoryResult),
});

export const batchResponseSchema = z.object({
  decisionId: z.uuid(),
  purpose: z.string(),
  evaluatedAt: isoTime,
  results: z.array(
    z.object({
      accountId,
      allow: z.boolean(),
      validUntil: isoTime.optional(),
      denied: z.array(z.object({ category: z.string(), reason: denyReason })).optional(),
    }),
  ),
});

export const recipientsResponseSchema = z.object({
  recipients: z.array(
    z.object({
      id: z.string(),
      legalName: z.string(),
      kind: recipientKind,
      retentionDays: z.int().describe('How long the recipient may keep what it receives'),
      purposes: z.array(z.string()).describe('The purposes and exceptions that may name it'),
    }),
  ),
});
