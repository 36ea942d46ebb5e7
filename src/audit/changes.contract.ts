import { z } from 'zod';
import { accountId, channel, consentEventKind } from '../platform/vocabulary';

/**
 * The wire format of the consent change feed (GET /v1/consent-changes): zod only, so that the client (src/client) is
 * typed by the same schemas the service validates with, without loading the server.
 */

export const consentChangesQuerySchema = z.strictObject({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const consentChangesResponseSchema = z.object({
  changes: z.array(
    z.object({
      seq: z.int(),
      eventId: z.uuid(),
      accountId,
      kind: consentEventKind,
      purpose: z.string(),
      category: z.string(),
      channel,
      occurredAt: z.iso.datetime(),
      expiresAt: z.iso.datetime().optional(),
      recipients: z.array(z.string()).optional().describe('A grant that names its recipients: their ids'),
    }),
  ),
  next: z.int(),
});
