import { z } from 'zod';
import { defineRoute } from '../platform/http/route';
import { webhookEvent } from './events';

const idParam = z.strictObject({ id: z.uuid() });

export const createWebhookSchema = z.strictObject({
  url: z
    .string()
    .max(2048)
    .describe('The receiver: http(s), no credentials; outside development, not a loopback, private or link-local host'),
  events: z.array(webhookEvent).min(1).max(webhookEvent.options.length).describe('The events to deliver'),
  description: z.string().max(500).optional(),
});

const endpoint = z.object({
  id: z.uuid(),
  url: z.string(),
  events: z.array(webhookEvent),
  description: z.string(),
  createdAt: z.iso.datetime(),
});

const delivery = z.object({
  id: z.uuid().describe('The `webhook-id` of every attempt'),
  event: z.string(),
  seq: z.int().nullable().describe("The change feed's sequence number of the event; null for a test"),
  status: z.enum(['pending', 'delivered', 'dead']),
  attempts: z.int(),
  lastStatus: z.int().nullable().describe("The receiver's last HTTP status; null if it gave none"),
  lastError: z.string().nullable(),
  nextAttemptAt: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
  completedAt: z.iso.datetime().nullable(),
});

export const webhookRoutes = {
  create: defineRoute({
    method: 'post',
    path: '/v1/webhooks',
    operationId: 'createWebhook',
    summary: 'Register a receiver of signed consent events',
    description:
      'The answer holds the signing secret (`whsec_…`), shown this once. Deliveries are signed the Standard Webhooks ' +
      'way and retried; see docs/webhooks.md. A refused URL is 422 naming `url`.',
    tag: 'webhooks',
    scopes: ['webhooks:write'],
    body: { schema: createWebhookSchema, limit: 8 * 1024 },
    responses: {
      201: { description: 'The endpoint, with its secret', schema: endpoint.extend({ secret: z.string() }) },
    },
  }),
  list: defineRoute({
    method: 'get',
    path: '/v1/webhooks',
    operationId: 'listWebhooks',
    summary: "The calling client's receivers",
    tag: 'webhooks',
    scopes: ['webhooks:write'],
    responses: { 200: { description: 'Every live endpoint', schema: z.object({ webhooks: z.array(endpoint) }) } },
  }),
  get: defineRoute({
    method: 'get',
    path: '/v1/webhooks/{id}',
    operationId: 'getWebhook',
    summary: 'One receiver (without its secret)',
    tag: 'webhooks',
    scopes: ['webhooks:write'],
    params: idParam,
    responses: { 200: { description: 'The endpoint', schema: endpoint } },
    problems: [404],
  }),
  remove: defineRoute({
    method: 'delete',
    path: '/v1/webhooks/{id}',
    operationId: 'deleteWebhook',
    summary: 'Stop delivering to a receiver',
    tag: 'webhooks',
    scopes: ['webhooks:write'],
    params: idParam,
    responses: { 204: { description: 'Deleted: nothing more is attempted' } },
    problems: [404],
  }),
  test: defineRoute({
    method: 'post',
    path: '/v1/webhooks/{id}/test',
    operationId: 'testWebhook',
    summary: 'Send a `webhook.test` event',
    description: 'Queued like any delivery, behind those already pending for the endpoint.',
    tag: 'webhooks',
    scopes: ['webhooks:write'],
    params: idParam,
    responses: {
      202: {
        description: 'Queued',
        schema: z.object({ deliveryId: z.uuid(), status: z.literal('pending') }),
      },
    },
    problems: [404],
  }),
  deliveries: defineRoute({
    method: 'get',
    path: '/v1/webhooks/{id}/deliveries',
    operationId: 'listWebhookDeliveries',
    summary: "A receiver's deliveries, newest first",
    tag: 'webhooks',
    scopes: ['webhooks:write'],
    params: idParam,
    query: z.strictObject({
      status: z.enum(['pending', 'delivered', 'dead']).optional(),
      cursor: z.string().max(64).optional(),
      limit: z.coerce.number().int().min(1).max(1000).default(100),
    }),
    responses: {
      200: {
        description: 'A page of deliveries',
        schema: z.object({
          deliveries: z.array(delivery),
          nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last page.'),
        }),
      },
    },
    problems: [404],
  }),
  replay: defineRoute({
    method: 'post',
    path: '/v1/webhooks/{id}/deliveries/{deliveryId}/replay',
    operationId: 'replayWebhookDelivery',
    summary: 'Deliver a dead (or delivered) delivery again',
    description: 'The delivery becomes pending, with a fresh set of retries; 409 while it is pending.',
    tag: 'webhooks',
    scopes: ['webhooks:write'],
    params: z.strictObject({ id: z.uuid(), deliveryId: z.uuid() }),
    responses: { 202: { description: 'Pending again', schema: delivery } },
    problems: [404, 409],
  }),
};
