import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { type AccountVerdict, canonicalJson, type DecisionHeader, parseRecord } from '../../src/audit';
import { DecisionBodies, encodeVerdict, prepareDecision, saltAt } from '../../src/audit/decisions';
import type { CategoryResult } from '../../src/platform/vocabulary';

/**
 * Compact decision records (audit format 2) are rebuilt from a header and a few verdict bytes:
 * the rebuilt body must be, byte for byte, the canonical JSON of the full record, for any header
 * and any verdict. (The codec is private to the audit component; this unit test pins it.)
 */

const CATEGORIES = [
  'name',
  'ssn',
  'web_browsing_history',
  'app_usage_history',
  'precise_geolocation',
  'ip_addresses',
  'device_identifiers',
  'health',
  'financial',
  'other_customer_info',
];
const time = fc.integer({ min: 0, max: 8_000_000_000_000 }).map((ms) => new Date(ms));
const text = fc.string({ minLength: 1, maxLength: 20 });
const header: fc.Arbitrary<DecisionHeader> = fc.record(
  {
    decisionId: fc.uuid(),
    endpoint: fc.constantFrom('single', 'batch', 'filter'),
    clientId: text,
    requestId: text,
    purpose: fc.constantFrom('ad_targeting', 'data_sale', 'fraud_protection'),
    // More than 8, so that a passed mask (one bit per category) takes a second byte.
    categories: fc.uniqueArray(fc.constantFrom(...CATEGORIES), { minLength: 1, maxLength: CATEGORIES.length }),
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

/** With or without the categories the filter passed on (a subset of the header's, perhaps none, in any order). */
const verdictFor = (h: DecisionHeader): fc.Arbitrary<AccountVerdict> =>
  fc
    .tuple(
      fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
      fc.tuple(...h.categories.map(result)),
      time,
      fc.option(fc.shuffledSubarray([...h.categories]), { nil: undefined }),
    )
    .map(([accountId, results, validUntil, passed]) => {
      const allow = results.every((r) => r.allow);
      const verdict = allow ? { accountId, allow, validUntil, results } : { accountId, allow, results };
      return passed ? { ...verdict, passed } : verdict;
    });

/** The record as a builder of plain JSON would write it (the format of records before format 2). */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const ZERO = new Date(0).toISOString();
/** In the header's order, whatever the order given. */
const expectedPassed = (h: DecisionHeader, v: AccountVerdict) =>
  v.passed ? h.categories.filter((c) => v.passed!.includes(c)) : undefined;

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
      passed: expectedPassed(h, v),
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
          // The one parser reads it (passed included).
          const content = canonicalJson({ ...JSON.parse(p.head + p.tail), seq: 1, recordedAt: ZERO });
          expect((parseRecord(content).data as { passed?: string[] }).passed).toEqual(expectedPassed(h, v));
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

describe('the passed mask (the streaming filter with a schema)', () => {
  const h: DecisionHeader = {
    decisionId: '00000000-0000-4000-8000-000000000001',
    endpoint: 'filter',
    clientId: 'c',
    requestId: 'r',
    purpose: 'ad_targeting',
    categories: CATEGORIES,
    evaluatedAt: new Date('2026-01-01T00:00:00.000Z'),
  };
  const deny = (category: string): CategoryResult => ({ category, allow: false, reason: 'no_consent' });
  const optOut = (category: string): CategoryResult => ({ category, allow: true, reason: 'not_opted_out' });
  const v: AccountVerdict = {
    accountId: 'A-1',
    allow: false,
    results: CATEGORIES.map((c) => (c === 'ssn' || c === 'other_customer_info' ? optOut(c) : deny(c))),
  };

  it('is flag bit 1 and a bit per category after the results, read as "passed" after evaluatedAt', () => {
    const bytes = encodeVerdict(h.categories, { ...v, passed: ['other_customer_info', 'ssn'] });
    // flags, 10 reason codes, then the mask: ssn is category 1 (byte 0, bit 1), other_customer_info category 9.
    expect(bytes.toString('hex')).toBe(`02${bytes.subarray(1, 11).toString('hex')}0202`);
    const p = new DecisionBodies(h).prepared(v.accountId, bytes);
    expect(p.head + p.tail).toContain(
      '"evaluatedAt":"2026-01-01T00:00:00.000Z","passed":["ssn","other_customer_info"],"purpose":"ad_targeting"',
    );
    const none = new DecisionBodies(h).prepared(v.accountId, encodeVerdict(h.categories, { ...v, passed: [] }));
    expect(none.head + none.tail).toContain('"passed":[],"purpose"');
  });

  it('leaves a record without the flag exactly as before: no passed member, the same bytes', () => {
    const bytes = encodeVerdict(h.categories, v);
    expect(bytes).toHaveLength(11);
    expect(bytes[0]).toBe(0);
    const p = new DecisionBodies(h).prepared(v.accountId, bytes);
    expect(p.head + p.tail).not.toContain('passed');
    expect(p.head + p.tail).toBe(expectedBody(h, v));
  });

  it('refuses bytes it cannot read: an unknown flag, a mask of the wrong length, a category not in the header', () => {
    const bytes = encodeVerdict(h.categories, { ...v, passed: ['ssn'] });
    const bodies = new DecisionBodies(h);
    expect(() => bodies.prepared('A-1', Buffer.from([bytes[0]! | 4, ...bytes.subarray(1)]))).toThrow(/flags/);
    expect(() => bodies.prepared('A-1', bytes.subarray(0, -1))).toThrow(/length/);
    expect(() => encodeVerdict(h.categories, { ...v, passed: ['children'] })).toThrow(/header/);
  });
});
