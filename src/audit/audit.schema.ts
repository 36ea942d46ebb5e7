import { z } from 'zod';
import { defineRoute } from '../platform/http/route';
import { accountId, outcome } from '../platform/vocabulary';
import { consentChangesQuerySchema, consentChangesResponseSchema } from './changes.contract';
import { auditType, exportFiltersSchema, exportFormat, purposeId } from './formats';
import { auditRecordSchema } from './records';

const page = {
  cursor: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
};
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const size = z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const treeHead = z.object({
  treeSize: z.int(),
  rootHash: hex64,
  hash: hex64.describe('The chain hash of record `treeSize`'),
  signedAt: z.iso.datetime(),
  kid: z.string(),
  jws: z.string().describe('The signed tree head: a compact JWS, `typ` optgate-checkpoint+jws'),
});
const nextCursor = z.string().nullable().describe('Pass as `cursor` for the next page; null on the last page.');

const eventsQuery = z.strictObject({
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  accountId: accountId.optional(),
  outcome: outcome.optional(),
  purpose: purposeId
    .optional()
    .describe('Only the decisions about this purpose (or exception) and the consent events for it'),
  ...page,
  type: z
    .string()
    .transform((s) => s.split(','))
    .pipe(z.array(auditType))
    .optional()
    .describe('One or more of consent_event, decision, staff_action, comma-separated'),
  include: z.literal('consents').optional().describe('Add to each decision the consent events it relied on'),
});

export const exportRequestSchema = exportFiltersSchema.extend({ format: exportFormat });
const exportParam = z.strictObject({ id: z.uuid('not an export id') });

const auditEvent = z.intersection(
  auditRecordSchema,
  z.object({
    prevHash: z.string(),
    hash: z.string(),
    accountSalt: z.string().optional().describe('Format 3: the salt of the account commitment the hash was made with'),
    consents: z.array(z.object({ eventId: z.string() }).loose()).optional(),
  }),
);

const exportStatus = z.object({
  exportId: z.uuid(),
  status: z.enum(['queued', 'running', 'completed', 'failed', 'expired']),
  progress: z.int().min(0).max(100),
  rows: z.int(),
  bytes: z.int(),
  format: exportFormat,
  filters: exportFiltersSchema,
  createdAt: z.iso.datetime(),
  completedAt: z.iso.datetime().optional(),
  expiresAt: z.iso.datetime().optional(),
  sha256: z.string().optional(),
  error: z.string().optional(),
});

export const auditRoutes = {
  consentChanges: defineRoute({
    method: 'get',
    path: '/v1/consent-changes',
    operationId: 'listConsentChanges',
    summary: 'Consent events in commit order, for purging data after a revocation',
    description: 'Poll with `after` = the last `next`; the feed never skips an event.',
    tag: 'consents',
    scopes: ['decisions'],
    query: consentChangesQuerySchema,
    responses: {
      200: {
        description: 'A page of the feed',
        schema: consentChangesResponseSchema,
      },
    },
  }),
  events: defineRoute({
    method: 'get',
    path: '/v1/audit/events',
    operationId: 'listAuditEvents',
    summary: 'Audit records in sequence order, filtered, cursor-paginated',
    tag: 'audit',
    scopes: ['audit:read'],
    query: eventsQuery,
    responses: {
      200: { description: 'A page of records', schema: z.object({ events: z.array(auditEvent), nextCursor }) },
    },
  }),
  checkpoints: defineRoute({
    method: 'get',
    path: '/v1/audit/checkpoints',
    operationId: 'listAuditCheckpoints',
    summary: 'Signed chain heads, newest first',
    tag: 'audit',
    scopes: ['audit:read'],
    query: z.strictObject(page),
    responses: {
      200: {
        description: 'A page of checkpoints',
        schema: z.object({
          checkpoints: z.array(
            z.object({
              seq: z.int(),
              hash: z.string(),
              rootHash: hex64.optional().describe('The Merkle root of records 1 … seq (absent before the tree)'),
              signedAt: z.iso.datetime(),
              kid: z.string(),
              jws: z.string(),
            }),
          ),
          nextCursor,
        }),
      },
    },
  }),
  treeHeads: defineRoute({
    method: 'get',
    path: '/v1/audit/tree-heads',
    operationId: 'listAuditTreeHeads',
    summary: 'Signed tree heads (Merkle roots of the log), newest first',
    tag: 'audit',
    scopes: ['audit:read'],
    query: z.strictObject(page),
    responses: {
      200: { description: 'A page of tree heads', schema: z.object({ treeHeads: z.array(treeHead), nextCursor }) },
    },
  }),
  latestTreeHead: defineRoute({
    method: 'get',
    path: '/v1/audit/tree-heads/latest',
    operationId: 'getLatestAuditTreeHead',
    summary: 'The latest signed tree head',
    tag: 'audit',
    scopes: ['audit:read'],
    responses: { 200: { description: 'The latest tree head', schema: treeHead } },
    problems: [404],
  }),
  inclusionProof: defineRoute({
    method: 'get',
    path: '/v1/audit/proofs/inclusion',
    operationId: 'getAuditInclusionProof',
    summary: 'That one record is in the log: its Merkle inclusion proof (RFC 9162)',
    tag: 'audit',
    scopes: ['audit:read'],
    query: z.strictObject({
      seq: size.describe('The record'),
      treeSize: size.optional().describe("The tree's size (default: the latest signed tree head's)"),
    }),
    responses: {
      200: {
        description: 'The proof',
        schema: z.object({
          seq: z.int(),
          leafIndex: z.int(),
          treeSize: z.int(),
          recordHash: hex64,
          hashes: z.array(hex64),
          rootHash: hex64,
          treeHead: z
            .string()
            .optional()
            .describe('The signed tree head of this size (a compact JWS), if there is one'),
          record: z.record(z.string(), z.unknown()).describe('The record, as a line of an NDJSON export'),
        }),
      },
    },
    problems: [404, 410],
  }),
  consistencyProof: defineRoute({
    method: 'get',
    path: '/v1/audit/proofs/consistency',
    operationId: 'getAuditConsistencyProof',
    summary: 'That a later tree extends an earlier one: the Merkle consistency proof (RFC 9162)',
    tag: 'audit',
    scopes: ['audit:read'],
    query: z.strictObject({
      from: size.describe("The earlier tree's size"),
      to: size.optional().describe("The later tree's size (default: the latest signed tree head's)"),
    }),
    responses: {
      200: {
        description: 'The proof',
        schema: z.object({ from: z.int(), to: z.int(), hashes: z.array(hex64) }),
      },
    },
    problems: [404, 410],
  }),
  requestExport: defineRoute({
    method: 'post',
    path: '/v1/audit/exports',
    operationId: 'requestAuditExport',
    summary: 'Start an export (a background job)',
    tag: 'audit',
    scopes: ['audit:read'],
    body: { schema: exportRequestSchema, limit: 16 * 1024 },
    responses: {
      202: {
        description: 'Queued',
        schema: z.object({ exportId: z.uuid(), status: z.literal('queued') }),
        headers: { location: 'The export status' },
      },
    },
    problems: [429],
  }),
  exportStatus: defineRoute({
    method: 'get',
    path: '/v1/audit/exports/{id}',
    operationId: 'getAuditExport',
    summary: 'Export status',
    tag: 'audit',
    scopes: ['audit:read'],
    params: exportParam,
    responses: { 200: { description: 'The export', schema: exportStatus } },
    problems: [404],
  }),
  exportManifest: defineRoute({
    method: 'get',
    path: '/v1/audit/exports/{id}/manifest',
    operationId: 'getAuditExportManifest',
    summary: "The export's signed manifest (a compact JWS)",
    tag: 'audit',
    scopes: ['audit:read'],
    params: exportParam,
    responses: { 200: { description: 'The manifest (kept after the file expires)', contentType: 'application/jose' } },
    problems: [404, 409],
  }),
  exportDownload: defineRoute({
    method: 'get',
    path: '/v1/audit/exports/{id}/download',
    operationId: 'downloadAuditExport',
    summary: 'The exported file, streamed',
    tag: 'audit',
    scopes: ['audit:read'],
    params: exportParam,
    responses: {
      200: {
        description: 'NDJSON or CSV, as requested',
        contentType: 'application/x-ndjson',
        headers: { 'x-content-sha256': "The file's SHA-256, as in the manifest" },
      },
    },
    problems: [404, 409, 410],
  }),
};
