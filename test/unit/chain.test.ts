import fc from 'fast-check';
import {
  ChainVerifier,
  canonicalJson,
  fromNdjsonLine,
  GENESIS_HASH,
  hashFormat,
  ndjsonLine,
  prepare,
  pseudonymisedLine,
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

  it('canonical JSON works on Node 20, which has no JSON.isRawJSON (engines: >=20.19)', () => {
    const json = JSON as { isRawJSON?: unknown };
    const isRawJSON = json.isRawJSON;
    delete json.isRawJSON;
    try {
      expect(canonicalJson({ b: { c: 1 }, a: [] })).toBe('{"a":[],"b":{"c":1}}');
    } finally {
      json.isRawJSON = isRawJSON;
    }
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
            // A record that names an account is format 3: its hash commits to a salted hash of the id.
            expect(r.accountSalt === undefined).toBe(drafts[i]!.accountId === null);
            expect(r.hash).toBe(recordHash(r.prevHash, r.content, true, r.accountSalt));
            // What an export line holds re-encodes to the same content.
            const line = ndjsonLine(r);
            expect(fromNdjsonLine(line).content).toBe(r.content);
            expect(hashFormat(fromNdjsonLine(line))).toBe(r.accountSalt ? 3 : 2);
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

  describe('format 3: the account commitment', () => {
    const [record, other] = seal(
      [
        prepare({ type: 'consent_event', accountId: 'SUB-00042', outcome: null, data: { choice: 'grant' } }),
        prepare({ type: 'consent_event', accountId: 'SUB-00043', outcome: null, data: { choice: 'grant' } }),
      ],
      { seq: 0, hash: GENESIS_HASH },
      new Date('2026-12-01T10:00:00.000Z'),
    );

    it('each record has its own 128-bit salt', () => {
      expect(record!.accountSalt).toMatch(/^[0-9a-f]{32}$/);
      expect(other!.accountSalt).not.toBe(record!.accountSalt);
    });

    it('pseudonymised (the id replaced, the salt dropped, the commitment kept), the record still verifies', () => {
      const line = pseudonymisedLine(record!, 'pseudonym:0123');
      expect(line).not.toContain('SUB-00042');
      expect(line).not.toContain(record!.accountSalt!);
      const parsed = fromNdjsonLine(line);
      expect(JSON.parse(parsed.content).accountId).toBe('pseudonym:0123');
      expect(hashFormat(parsed)).toBe(3);
      const v = new ChainVerifier({ contiguous: true, fromGenesis: true });
      v.push(parsed);
      v.push(fromNdjsonLine(ndjsonLine(other!)));
      expect(v.problem).toBeUndefined();
    });

    it('another id, another salt, another commitment, or the salt dropped: the hash does not match', () => {
      const r = fromNdjsonLine(ndjsonLine(record!));
      const variants = [
        { ...r, content: r.content.replace('SUB-00042', 'SUB-00043') },
        { ...r, accountSalt: other!.accountSalt },
        { ...r, accountSalt: undefined },
        { ...fromNdjsonLine(pseudonymisedLine(other!, 'pseudonym:1')), seq: 1, hash: r.hash, prevHash: r.prevHash },
      ];
      for (const v of variants) expect(hashFormat(v)).toBeUndefined();
    });

    it('format 2 records (no account, or written before salts) still verify, and may follow format 3 ones', () => {
      const records = seal(
        [
          prepare({ type: 'staff_action', accountId: 'SUB-1', outcome: null, data: {} }),
          prepare({ type: 'staff_action', accountId: null, outcome: null, data: {} }),
        ],
        { seq: 0, hash: GENESIS_HASH },
        new Date(),
      );
      expect(records.map((r) => hashFormat(r))).toEqual([3, 2]);
      const v = new ChainVerifier({ contiguous: true, fromGenesis: true });
      for (const r of records) v.push(r);
      expect(v.problem).toBeUndefined();
    });
  });
});
