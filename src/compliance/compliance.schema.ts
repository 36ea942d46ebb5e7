import { z } from 'zod';
import { defineRoute } from '../platform/http/route';
import { accountId, channel, consentEventKind } from '../platform/vocabulary';

const isoTime = z.iso.datetime();
const at = z.iso.datetime({ offset: true }).transform((s) => new Date(s));

export const nonDiscriminationQuery = z.strictObject({
  from: at.describe('Plan and price changes from this time (inclusive)'),
  to: at.describe('… to this time (exclusive)'),
  cursor: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe('Plan and price changes examined per page'),
});

const money = z.string().nullable().describe('Two decimals, as a string');

export const nonDiscriminationResponse = z.object({
  windowDays: z.int().describe('How long after a consent choice a change of plan or price is listed'),
  items: z.array(
    z.object({
      accountId,
      planChange: z.object({
        changeId: z.string(),
        changedAt: isoTime,
        plan: z.string().nullable(),
        monthlyPrice: money,
        previousPlan: z.string().nullable(),
        previousMonthlyPrice: money,
      }),
      consentChoices: z
        .array(
          z.object({
            eventId: z.uuid(),
            kind: consentEventKind,
            purpose: z.string(),
            category: z.string(),
            channel,
            occurredAt: isoTime,
            daysBefore: z.number().describe('Days between the choice and the change of plan or price'),
          }),
        )
        .min(1),
    }),
  ),
  nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last page.'),
});

export const complianceRoutes = {
  nonDiscrimination: defineRoute({
    method: 'get',
    path: '/v1/compliance/non-discrimination',
    operationId: 'nonDiscrimination',
    summary: 'Changes of plan or price that followed a consent choice within 30 days, with both events',
    description:
      'The statute forbids refusing service, penalties and discounts based on the choice: each change listed is ' +
      'one for staff to review and explain. A page examines up to `limit` changes of plan or price (in the order ' +
      'recorded) and lists those that followed a choice; a page may list fewer than `limit`.',
    tag: 'audit',
    scopes: ['audit:read'],
    query: nonDiscriminationQuery,
    responses: { 200: { description: 'The changes to review', schema: nonDiscriminationResponse } },
  }),
};
