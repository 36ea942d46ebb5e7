import { Router } from 'express';
import { z } from 'zod';
import { accountIdSchema as accountId } from '../accounts/account.service';
import { principalOf, requireScope } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { AppError } from '../platform/errors';
import { jsonBody, requestIdOf } from '../platform/http/middleware';
import { parse } from '../platform/http/validate';
import type { DecisionService } from './decision.service';
import { filterRecords } from './filter';

// Free text goes into the audit record: no control characters.
const printable = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters');
const common = {
  purpose: z.string().min(1).max(64),
  categories: z.array(z.string().min(1).max(64)).min(1).max(100),
  recipient: printable.optional(),
  reference: printable.optional(),
};
export const decisionRequestSchema = z.strictObject({ accountId, ...common });
// No upper bound here: the service answers 413 past its limit.
export const batchRequestSchema = z.strictObject({ accountIds: z.array(accountId).min(1), ...common });

const filterQuery = z.strictObject({
  purpose: common.purpose,
  categories: z
    .string()
    .transform((s) => s.split(',').filter(Boolean))
    .pipe(common.categories),
  accountField: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a field name')
    .default('accountId'),
  recipient: common.recipient,
  reference: common.reference,
});

export function decisionRouter(decisions: DecisionService, verifier: TokenVerifier): Router {
  const router = Router();
  const auth = requireScope(verifier, 'decisions');

  router.post('/v1/decisions', auth, jsonBody('64kb'), async (req, res) => {
    res.json(
      await decisions.decide(
        { principal: principalOf(res), requestId: requestIdOf(res) },
        parse(decisionRequestSchema, req.body),
      ),
    );
  });

  // 10,000 account ids of up to 64 characters fit in 1 MB; 2 MB leaves room for the rest.
  router.post('/v1/decisions/batch', auth, jsonBody('2mb'), async (req, res) => {
    res.json(
      await decisions.decideBatch(
        { principal: principalOf(res), requestId: requestIdOf(res) },
        parse(batchRequestSchema, req.body),
      ),
    );
  });

  /**
   * NDJSON records in, only the allowed ones out, streamed. The request is checked before the
   * first byte is answered (4xx problems); after that, a failure cuts the response, so a caller
   * can never take a partial stream for a complete one. Counts come as HTTP trailers.
   */
  router.post('/v1/filter', auth, async (req, res) => {
    const { purpose, categories, accountField, recipient, reference } = parse(filterQuery, req.query);
    if (!req.is(['application/x-ndjson', 'application/jsonl', 'application/json', 'text/plain'])) {
      throw new AppError(
        'unsupported-media-type',
        'Send the records as application/x-ndjson, one JSON object per line.',
      );
    }
    const judge = decisions.filterJudge(
      { principal: principalOf(res), requestId: requestIdOf(res) },
      { purpose, categories, recipient, reference },
    );
    // Headers go out with the first record (or at the end): until then a failure is still a clean 503 problem.
    const start = () => {
      if (!res.headersSent)
        res
          .status(200)
          .type('application/x-ndjson')
          .setHeader('trailer', 'x-optgate-received, x-optgate-allowed, x-optgate-invalid');
    };
    const write = (line: string) => {
      start();
      return res.write(line) ? Promise.resolve() : new Promise<void>((resolve) => res.once('drain', () => resolve()));
    };
    const counts = await filterRecords(req, accountField, judge, write);
    start();
    res.addTrailers({
      'x-optgate-received': String(counts.received),
      'x-optgate-allowed': String(counts.allowed),
      'x-optgate-invalid': String(counts.invalid),
    });
    res.end();
  });

  return router;
}
