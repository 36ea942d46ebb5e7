import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { type AccountVerdict, canonicalJson, type DecisionHeader } from '../../src/audit';
import { DecisionBodies, encodeVerdict, prepareDecision, saltAt } from '../../src/audit/decisions';
import type { CategoryResult } from '../../src/platform/vocabulary';

/**
 * Compact decision records (audit format 2) are rebuilt from a header and a few verdict bytes:
 * the rebuilt body must be, byte for byte, the canonical JSON of the full record, for any header
 * and any verdict. (The codec is private to the audit component; this unit test pins it.)
 */

const time = fc.integer({ min: 0, max: 8_000_000_000_000 }).map((ms) => new Date(ms));
const text = fc.string({ minLength: 1, maxLength: 20 });
const header: fc.Arbitrary<DecisionHeader> = fc.record(
  {
    decisionId: fc.uuid(),
    endpoint: fc.constantFrom('single', 'batch', 'filter'),
    clientId: text,
    requestId: text,
    purpose: fc.constantFrom('ad_targeting', 'data_sale', 'fraud_protection'),
    categories: fc.uniqueArray(fc.constantFrom('name', 'ssn', 'web_browsing_history', 'other_customer_info'), {
      minLength: 1,
      maxLength: 4,
    }),
    recipient: text,
    reference: text,
    evaluatedAt: time,
  },
  { requiredKeys: ['decisionId', 'endpoint', 'clientId', 'requestId', 'purpose', 'categories', 'evaluatedAt'] },
);

const result = (category: string): fc.Arbitrary<CategoryResult> =>
  fc.oneof(
    fc.record({
      category: fc.constant(category),
      allow: fc.constant(true as const),
      reason: fc.constant('consent_granted' as const),
      consentId: fc.uuid(),
      expiresAt: time,
    }),
    fc.record({
      category: fc.constant(category),
      allow: fc.constant(true as const),
      reason: fc.constantFrom('exception' as const, 'not_opted_out' as const),
    }),
    fc.record({
      category: fc.constant(category),
      allow: fc.constant(false as const),
      reason: fc.constantFrom(
        'no_consent' as const,
        'consent_revoked' as const,
        'opted_out' as const,
        'unknown_account' as const,
      ),
    }),
  );

const verdictFor = (h: DecisionHeader): fc.Arbitrary<AccountVerdict> =>
  fc
    .tuple(fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/), fc.tuple(...h.categories.map(result)), time)
    .map(([accountId, results, validUntil]) => {
      const allow = results.every((r) => r.allow);
      return allow ? { accountId, allow, validUntil, results } : { accountId, allow, results };
    });

/** The record as a builder of plain JSON would write it (the format of records before format 2). */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function expectedBody(h: DecisionHeader, v: AccountVerdict): string {
  return canonicalJson({
    accountId: v.accountId,
    type: 'decision',
    outcome: v.allow ? 'allow' : 'deny',
    data: {
      decisionId: h.decisionId,
      endpoint: h.endpoint,
      clientId: h.clientId,
      requestId: h.requestId,
      purpose: h.purpose,
      categories: [...h.categories],
      recipient: h.recipient,
      reference: h.reference,
      evaluatedAt: h.evaluatedAt.toISOString(),
      validUntil: v.allow ? v.validUntil!.toISOString() : undefined,
      results: v.results.map((r) =>
        r.allow
          ? {
              category: r.category,
              allow: true,
              reason: r.reason,
              consentId: r.consentId,
              expiresAt: r.expiresAt?.toISOString(),
            }
          : { category: r.category, allow: false, reason: r.reason },
      ),
    },
  });
}

it('the body rebuilt from header and verdict bytes is the canonical JSON of the record', () => {
  fc.assert(
    fc.property(
      header.chain((h) => fc.tuple(fc.constant(h), fc.array(verdictFor(h), { minLength: 1, maxLength: 5 }))),
      ([h, verdicts]) => {
        const bodies = new DecisionBodies(h);
        const item = prepareDecision(h, verdicts);
        verdicts.forEach((v, i) => {
          // Format 3: the content hash commits to the account through the salt the call's seed gives record i.
          const salt = saltAt(item.seed, i);
          const p = bodies.prepared(v.accountId, encodeVerdict(h.categories, v), salt);
          expect(p.head + p.tail).toBe(expectedBody(h, v));
          expect(p.outcome).toBe(v.allow ? 'allow' : 'deny');
          expect(p.accountSalt).toBe(salt);
          expect(item.verdicts[i]!.contentHash).toBe(p.contentHash);
          const commitment = sha256(`optgate-account\n${salt}\n${v.accountId}`);
          expect(p.contentHash).toBe(sha256(expectedBody(h, { ...v, accountId: commitment })));
        });
      },
    ),
    { numRuns: 500 },
  );
});

it('verdict bytes are few: a deny of one category is 2 bytes, a granted allow 30', () => {
  const h = { categories: ['name'] } as unknown as DecisionHeader;
  expect(
    encodeVerdict(h.categories, {
      accountId: 'A',
      allow: false,
      results: [{ category: 'name', allow: false, reason: 'no_consent' }],
    }),
  ).toHaveLength(2);
  const granted = {
    accountId: 'A',
    allow: true,
    validUntil: new Date(),
    results: [
      {
        category: 'name',
        allow: true as const,
        reason: 'consent_granted' as const,
        consentId: crypto.randomUUID(),
        expiresAt: new Date(),
      },
    ],
  };
  expect(encodeVerdict(h.categories, granted)).toHaveLength(30);
});
