import fc from 'fast-check';
import { loadConfig } from '../../src/platform/config';
import { type ConsentSnapshot, evaluate } from '../../src/policy/engine';

/** Fail closed, whatever the input: an allow only where the decision table gives one. */

const catalog = loadConfig({ NODE_ENV: 'test' }).catalog;
const categories = [...catalog.categories.keys(), 'not_a_category'];
const purposes = [...catalog.purposes.keys(), ...catalog.exceptions.keys(), 'not_a_purpose'];
const versions = [...catalog.noticesByVersion.keys(), 'v-unknown'];
const recipients = [...catalog.recipients.keys(), 'not-a-recipient'];
const NOW = Date.parse('2026-06-01T00:00:00Z');

const snapshot: fc.Arbitrary<ConsentSnapshot> = fc.record({
  state: fc.constantFrom('granted', 'revoked', 'declined', 'expired', 'opted_out', 'not_opted_out', 'lapsed'),
  consentId: fc.option(fc.uuid(), { nil: null }),
  noticeVersion: fc.constantFrom(...versions),
  expiresAt: fc.option(
    fc.integer({ min: NOW - 5e9, max: NOW + 5e9 }).map((t) => new Date(t)),
    { nil: null },
  ),
  recipients: fc.option(fc.uniqueArray(fc.constantFrom(...recipients), { maxLength: 3 }), { nil: null }),
});

const input = fc.record({
  purpose: fc.constantFrom(...purposes),
  categories: fc.uniqueArray(fc.constantFrom(...categories), { maxLength: 5 }),
  reference: fc.option(fc.constantFrom('', ' ', 'ORDER-1', 'CV-2026-001', 'none'), { nil: undefined }),
  recipient: fc.option(fc.constantFrom(...recipients), { nil: undefined }),
  account: fc.option(fc.record({ status: fc.constantFrom('active' as const, 'closed' as const) }), { nil: null }),
  consents: fc.dictionary(fc.constantFrom(...categories), snapshot),
  now: fc.integer({ min: NOW - 1e9, max: NOW + 1e9 }).map((t) => new Date(t)),
});

describe('engine properties', () => {
  it('allows only what the decision table allows, and never beyond a relied-on expiry', () => {
    fc.assert(
      fc.property(input, (i) => {
        const consents = new Map(Object.entries(i.consents));
        const verdict = evaluate(i, { account: i.account, consents }, catalog, i.now);
        expect(verdict.results.map((r) => r.category)).toEqual(i.categories);
        if (!verdict.allow) return;

        const exception = catalog.exceptions.get(i.purpose);
        const kinds = (exception ?? catalog.purposes.get(i.purpose))?.recipientKinds;
        expect(i.account).not.toBeNull();
        if (i.account!.status !== 'active') expect(exception?.survivesClosure).toBe(true);
        expect(i.categories.length).toBeGreaterThan(0);
        expect(verdict.validUntil.getTime()).toBeGreaterThan(i.now.getTime());
        // Never reused beyond the reuse window, however far away the consent's expiry.
        expect(verdict.validUntil.getTime()).toBeLessThanOrEqual(i.now.getTime() + catalog.decisionReuseSeconds * 1000);
        if (i.recipient !== undefined) expect(catalog.recipients.has(i.recipient)).toBe(true);
        if (kinds) expect(kinds).toContain(catalog.recipients.get(i.recipient!)?.kind);
        for (const r of verdict.results) {
          expect(r.allow).toBe(true);
          const regime = catalog.categories.get(r.category)?.regime;
          expect(regime).toBeDefined();
          if (exception) {
            expect(r.reason).toBe('exception');
            if (exception.referencePattern) expect(i.reference).toMatch(exception.referencePattern);
            expect(exception.categories).toContain(r.category);
          } else if (regime === 'opt_out') {
            expect(r.reason).toBe('not_opted_out');
            expect(consents.get(r.category)?.state).not.toBe('opted_out');
          } else {
            const c = consents.get(r.category)!;
            expect(r.reason).toBe('consent_granted');
            expect(c.state).toBe('granted');
            expect(i.now.getTime()).toBeLessThan(c.expiresAt!.getTime());
            expect(verdict.validUntil.getTime()).toBeLessThanOrEqual(c.expiresAt!.getTime());
            if (kinds) expect(c.recipients).toContain(i.recipient);
          }
        }
      }),
      { numRuns: 5000 },
    );
  });
});
