import { type Response, Router } from 'express';
import { principalOf } from '../platform/auth/middleware';
import type { TokenVerifier } from '../platform/auth/tokens';
import { decodedBody, issuedRequestIdOf, requestIdOf, sendJson } from '../platform/http/middleware';
import { mounter } from '../platform/http/route';
import { FILTER_TRAILERS } from './decision.contract';
import { decisionRoutes as routes } from './decision.schema';
import type { BatchDecision, Caller, Decision, DecisionService } from './decision.service';
import { filterRecords } from './filter';

/*
 * The answers with their times as text: JSON.stringify calls each Date's toJSON on a slow path, which made encoding
 * a single decision about twice as slow. The bytes are the same.
 */
const iso = (d: Date | undefined) => d?.toISOString();

const decisionJson = (d: Decision) => ({
  ...d,
  evaluatedAt: iso(d.evaluatedAt),
  validUntil: iso(d.validUntil),
  results: d.results.map((r) => (r.allow && r.expiresAt ? { ...r, expiresAt: iso(r.expiresAt) } : r)),
});

const batchJson = (b: BatchDecision) => ({
  ...b,
  evaluatedAt: iso(b.evaluatedAt),
  results: b.results.map((r) => (r.validUntil ? { ...r, validUntil: iso(r.validUntil) } : r)),
});

const callerOf = (res: Response): Caller => ({
  principal: principalOf(res),
  requestId: requestIdOf(res),
  issuedRequestId: issuedRequestIdOf(res),
});

export function decisionRouter({ decisions, verifier }: { decisions: DecisionService; verifier: TokenVerifier }) {
  const router = Router();
  const route = mounter(router, verifier);

  route(routes.recipients, (_input, _req, res) => {
    sendJson(res, { recipients: decisions.recipients() });
  });

  route(routes.decide, async ({ body }, _req, res) => {
    sendJson(res, decisionJson(await decisions.decide(callerOf(res), body)));
  });

  route(routes.decideBatch, async ({ body }, _req, res) => {
    sendJson(res, batchJson(await decisions.decideBatch(callerOf(res), body)));
  });

  /**
   * The request is checked before the first byte is answered (4xx problems); after that, a
   * failure cuts the response, so a caller can never take a partial stream for a complete one.
   */
  route(routes.filter, async ({ query }, req, res) => {
    const input = decodedBody(req);
    const { plan, judge } = decisions.filterJudge(callerOf(res), query);
    // Headers go out with the first record (or at the end): until then a failure is still a clean problem.
    const start = () => {
      if (res.headersSent) return;
      res.status(200).type('application/x-ndjson');
      res.setHeader('trailer', FILTER_TRAILERS);
    };
    const write = (text: string) => {
      start();
      return res.write(text) ? Promise.resolve() : new Promise<void>((resolve) => res.once('drain', () => resolve()));
    };
    const counts = await filterRecords(input, plan, judge, write);
    start();
    res.addTrailers({
      'x-optgate-received': String(counts.received),
      'x-optgate-allowed': String(counts.allowed),
      'x-optgate-invalid': String(counts.invalid),
      'x-optgate-redacted': String(counts.redacted),
    });
    res.end();
  });

  return router;
}
