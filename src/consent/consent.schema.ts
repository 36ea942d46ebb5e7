import { z } from 'zod';
import { defineRoute } from '../platform/http/route';
import { accountId, consentEventKind, consentState, verificationMethod } from '../platform/vocabulary';

export const accountParam = z.strictObject({ accountId });

export const changeSetSchema = z.strictObject({
  channel: z.enum(['api', 'call_center', 'point_of_sale'], {
    error: 'must be api, call_center or point_of_sale (portal changes are made in the portal)',
  }),
  actor: z.union([
    z.literal('subscriber').transform(() => ({ type: 'subscriber' as const })),
    z.strictObject({ type: z.literal('subscriber') }),
    z.strictObject({ type: z.literal('staff'), id: z.string().min(1).max(128) }),
  ]),
  noticeVersion: z.string().min(1).max(32),
  verification: verificationMethod
    .optional()
    .describe("Staff acting on the subscriber's word: how they verified who they spoke to (required for staff)"),
  reference: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters')
    .optional()
    .describe("Staff acting on the subscriber's word: the call or ticket id (required for staff)"),
  affirmative: z
    .boolean()
    .default(false)
    .describe('The subscriber made an express, affirmative act: needed for a grant'),
  changes: z
    .array(
      z.strictObject({
        purpose: z.string().min(1).max(64),
        category: z.string().min(1).max(64),
        choice: z.enum(['grant', 'revoke', 'opt_out', 'withdraw_opt_out']),
        expiresAt: z.iso
          .datetime({ offset: true })
          .transform((s) => new Date(s))
          .optional(),
        recipients: z
          .array(z.string().min(1).max(64))
          .min(1)
          .max(100)
          .optional()
          .describe(
            'A grant for a purpose that names its recipients (data_sale, third_party_disclosure, permit_access): the ' +
              'registry ids it covers (GET /v1/recipients). Absent: every recipient of an allowed kind ' +
              'registered now, ' +
              'recorded by name (one registered later is not covered).',
          ),
      }),
    )
    .min(1)
    .max(200),
});

const isoTime = z.iso.datetime();
const consentView = z.object({
  purpose: z.string(),
  category: z.string(),
  state: z
    .enum([...consentState.options, 'superseded'])
    .describe(
      '`superseded`: granted under a notice version that a later material change replaced; it no longer counts',
    ),
  consentId: z.uuid(),
  noticeVersion: z.string(),
  grantedAt: isoTime.optional(),
  expiresAt: isoTime.optional(),
  revokedAt: isoTime.optional(),
  updatedAt: isoTime,
  recipients: z.array(z.string()).optional().describe('A grant that names its recipients: their registry ids'),
});

export const consentRoutes = {
  current: defineRoute({
    method: 'get',
    path: '/v1/accounts/{accountId}/consents',
    operationId: 'getConsents',
    summary: 'Current consent state per purpose × category',
    tag: 'consents',
    scopes: ['decisions', 'consents:write'],
    params: accountParam,
    responses: {
      200: { description: "The account's consents", schema: z.object({ accountId, consents: z.array(consentView) }) },
    },
    problems: [404],
  }),
  record: defineRoute({
    method: 'put',
    path: '/v1/accounts/{accountId}/consents',
    operationId: 'recordConsents',
    summary: 'Record consent changes made through a channel other than the portal',
    description:
      'All changes are recorded, or none, as one act with one signed receipt that lists them all. A grant needs ' +
      '`affirmative: true` and a notice version that no later material change has superseded for its purpose. A ' +
      'closed account takes no changes (409).',
    tag: 'consents',
    scopes: ['consents:write'],
    params: accountParam,
    body: { schema: changeSetSchema, limit: 256 * 1024 },
    responses: {
      200: {
        description: 'The events recorded, their receipt, and the state they leave',
        schema: z.object({
          accountId,
          receiptId: z.uuid().describe('The signed receipt of this call: one receipt lists every change it recorded'),
          receiptUrl: z.url().describe('The portal page of the receipt, for the subscriber (after sign-in)'),
          events: z.array(
            z.object({
              eventId: z.uuid(),
              seq: z.string(),
              purpose: z.string(),
              category: z.string(),
              kind: consentEventKind,
              occurredAt: isoTime,
              expiresAt: isoTime.optional(),
              recipients: z.array(z.string()).optional(),
              receiptId: z.uuid().describe("The receipt of the call's changes (the same for each event)"),
              receiptUrl: z.url().describe('The portal page of that receipt, for the subscriber (after sign-in)'),
            }),
          ),
          consents: z.array(consentView),
        }),
      },
    },
    problems: [404, 409],
  }),
};
