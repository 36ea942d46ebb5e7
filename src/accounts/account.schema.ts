import { z } from 'zod';
import { defineRoute } from '../platform/http/route';
import { accountId, accountStatus } from '../platform/vocabulary';

const state = z
  .string()
  .min(1)
  .max(64)
  .nullish()
  .transform((v) => v ?? null);

const plan = z
  .string()
  .min(1)
  .max(64)
  .nullish()
  .transform((v) => v ?? null)
  .describe("The subscriber's plan (optional; every change is recorded, see GET /v1/compliance/non-discrimination)");
const monthlyPrice = z
  .number()
  .min(0)
  .max(1_000_000)
  .refine((n) => Math.round(n * 100) === Number((n * 100).toFixed(6)), 'at most two decimals')
  .nullish()
  .transform((v) => (v === null || v === undefined ? null : v.toFixed(2)))
  .describe('What the subscriber pays a month (optional; at most two decimals)');

export const accountsRequestSchema = z.strictObject({
  accounts: z
    .array(
      z.strictObject({
        accountId,
        status: accountStatus,
        serviceState: state,
        billingState: state,
        plan,
        monthlyPrice,
      }),
    )
    .min(1)
    .describe('At most 10,000 accounts per call (more is 413)'),
});

export const accountRoutes = {
  upsert: defineRoute({
    method: 'post',
    path: '/v1/accounts',
    operationId: 'upsertAccounts',
    summary: 'Create or update up to 10,000 accounts',
    description: 'The last entry for an account wins. Closing an account makes every decision about it a deny.',
    tag: 'accounts',
    scopes: ['accounts:write'],
    body: { schema: accountsRequestSchema, limit: 4 * 1024 * 1024 },
    responses: {
      200: {
        description: 'How many accounts the call held, and how many were new or changed',
        schema: z.object({ upserted: z.int(), changed: z.int() }),
      },
    },
  }),
};
