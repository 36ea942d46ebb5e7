import fc from 'fast-check';
import {
  ChainVerifier,
  canonicalJson,
  fromNdjsonLine,
  GENESIS_HASH,
  prepare,
  seal,
  type Unchained,
} from '../../src/audit';
import { contentOf, recordHash } from '../support/audit';

const json: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.string(), tie('value'), { maxKeys: 3 }),
  ),
})).value;

const draft: fc.Arbitrary<Unchained> = fc.record({
  type: fc.constantFrom('consent_event', 'decision', 'staff_action'),
  accountId: fc.option(fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/), { nil: null }),
  outcome: fc.constantFrom('allow', 'deny', null),
  data: fc.dictionary(fc.string(), json) as fc.Arbitrary<Unchained['data']>,
});

describe('audit chain encoding', () => {
  it('canonical JSON sorts keys, drops undefined, and refuses non-integers', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: undefined, d: { z: 0, y: -1 } })).toBe(
      '{"a":[true,null,"x"],"b":1,"d":{"y":-1,"z":0}}',
    );
    expect(() => canonicalJson({ n: 1.5 })).toThrow(/integers/);
  });

  it('the prepared fast path encodes exactly the canonical content', () => {
    fc.assert(
      fc.property(
        fc.array(draft, { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 0, max: 1e9 }),
        (drafts, start) => {
          const at = new Date(1_700_000_000_000 + start);
          const records = seal(drafts.map(prepare), { seq: start, hash: GENESIS_HASH }, at);
          records.forEach((r, i) => {
            expect(r.content).toBe(contentOf({ ...drafts[i]!, seq: start + i + 1, recordedAt: at.toISOString() }));
            expect(r.hash).toBe(recordHash(r.prevHash, r.content));
            // What an export line holds re-encodes to the same content.
            const line = `${r.content.slice(0, -1)},"prevHash":"${r.prevHash}","hash":"${r.hash}"}`;
            expect(fromNdjsonLine(line).content).toBe(r.content);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a verifier names the first bad sequence', () => {
    const records = seal(
      [1, 2, 3, 4].map((n) => prepare({ type: 'staff_action', accountId: null, outcome: null, data: { n } })),
      { seq: 0, hash: GENESIS_HASH },
      new Date(),
    );
    const check = (list: typeof records) => {
      const v = new ChainVerifier({ contiguous: true, fromGenesis: true });
      for (const r of list) v.push(r);
      return v.problem;
    };
    expect(check(records)).toBeUndefined();
    expect(
      check([
        records[0]!,
        { ...records[1]!, content: records[1]!.content.replace('"n":2', '"n":9') },
        records[2]!,
        records[3]!,
      ])?.seq,
    ).toBe(2);
    expect(check([records[0]!, records[2]!, records[3]!])?.seq).toBe(2);
    expect(check([records[0]!, records[2]!, records[1]!, records[3]!])?.seq).toBe(2);
    expect(check([records[0]!, records[1]!, records[1]!, records[2]!, records[3]!])?.seq).toBe(2);
  });
});
