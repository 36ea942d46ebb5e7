import { z } from 'zod';
import { defineRoute } from '../platform/http/route';
import { accountId, noticeDeliveryChannel } from '../platform/vocabulary';

const noticeSummary = z.object({
  version: z.string(),
  effectiveAt: z.iso.datetime(),
  sha256: z.string(),
  material: z.boolean(),
  materialFor: z.array(z.string()).describe('Purposes for which older opt-ins stop counting'),
});

/** What `GET /v1/notices/{version}` answers in, by `Accept`: JSON first, the default. */
export const NOTICE_MEDIA_TYPES = ['application/json', 'text/plain', 'text/html'] as const;

const accountParam = z.strictObject({ accountId });

export const deliveryRequestSchema = z.strictObject({
  noticeVersion: z.string().min(1).max(32).describe('The version given: in the catalog and in effect'),
  channel: noticeDeliveryChannel,
  staffId: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .describe('Who gave it (an employee id): required for point_of_sale and call_center'),
  deliveredAt: z.iso
    .datetime({ offset: true })
    .transform((s) => new Date(s))
    .optional()
    .describe('When it was given (ISO 8601 with offset; default now): not in the future, not before it took effect'),
});

const delivery = z.object({
  deliveryId: z.uuid(),
  accountId,
  noticeVersion: z.string(),
  noticeSha256: z.string().describe('SHA-256 of the text given (hex)'),
  channel: noticeDeliveryChannel,
  staffId: z.string().optional(),
  clientId: z.string().describe('The client that recorded it (its token `sub`)'),
  deliveredAt: z.iso.datetime(),
  recordedAt: z.iso.datetime(),
});

const page = {
  cursor: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
};

export const noticeRoutes = {
  list: defineRoute({
    method: 'get',
    path: '/v1/notices',
    operationId: 'listNotices',
    summary: 'Notice versions, and the one in force',
    tag: 'notices',
    responses: {
      200: {
        description: 'Every version, in effective order',
        schema: z.object({ current: z.string().nullable(), versions: z.array(noticeSummary) }),
      },
    },
  }),
  get: defineRoute({
    method: 'get',
    path: '/v1/notices/{version}',
    operationId: 'getNotice',
    summary: 'One notice version with its text',
    description:
      'By `Accept`: JSON (the default), `text/plain` (the Markdown text exactly: its SHA-256 is `sha256`) or ' +
      '`text/html` (the text rendered, as an HTML fragment: one `article` element). Anything else is 406.',
    tag: 'notices',
    params: z.strictObject({ version: z.string() }),
    responses: {
      200: {
        description: 'The notice',
        schema: noticeSummary.extend({ text: z.string() }),
        alternatives: {
          'text/plain': 'The Markdown text, byte for byte the text whose SHA-256 is `sha256`',
          'text/html': 'The text rendered: an `article` element carrying data-version, data-effective-at, data-sha256',
        },
        headers: { Vary: 'Accept' },
      },
    },
    problems: [404, 406],
  }),
  recordDelivery: defineRoute({
    method: 'post',
    path: '/v1/accounts/{accountId}/notice-deliveries',
    operationId: 'recordNoticeDelivery',
    summary: 'Record that a notice version was given to the subscriber',
    description:
      'The proof that a channel showed the notice before asking: the version and the SHA-256 of its text, the ' +
      'channel, who gave it and when. Append-only; each delivery is an audit record (`notice_delivered`).',
    tag: 'notices',
    scopes: ['consents:write'],
    params: accountParam,
    body: { schema: deliveryRequestSchema, limit: 4 * 1024 },
    responses: { 201: { description: 'The delivery, as recorded', schema: delivery } },
    problems: [404],
  }),
  listDeliveries: defineRoute({
    method: 'get',
    path: '/v1/accounts/{accountId}/notice-deliveries',
    operationId: 'listNoticeDeliveries',
    summary: 'The notice versions given to the subscriber, newest first',
    tag: 'notices',
    scopes: ['decisions', 'consents:write'],
    params: accountParam,
    query: z.strictObject(page),
    responses: {
      200: {
        description: 'A page of deliveries',
        schema: z.object({
          accountId,
          deliveries: z.array(delivery),
          nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last page.'),
        }),
      },
    },
    problems: [404],
  }),
};
