import { createHash } from 'node:crypto';
import {
  consistencyProof,
  inclusionProof,
  leafHash,
  MerkleAccumulator,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from '../../src/audit';

/**
 * The Merkle tree against a reference written here from RFC 9162 §2.1 alone (MTH, PATH, PROOF by
 * their recursive definitions, on raw byte strings): every tree size 1 … 300, every proof of the
 * small trees and a sample of the larger ones; proofs that verify, and changed ones that do not.
 */

const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
const k = (n: number) => 2 ** Math.ceil(Math.log2(n) - 1);

function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return sha();
  if (d.length === 1) return sha(Buffer.from([0]), d[0]!);
  return sha(Buffer.from([1]), mth(d.slice(0, k(d.length))), mth(d.slice(k(d.length))));
}

function path(m: number, d: Buffer[]): Buffer[] {
  if (d.length === 1) return [];
  const s = k(d.length);
  return m < s ? [...path(m, d.slice(0, s)), mth(d.slice(s))] : [...path(m - s, d.slice(s)), mth(d.slice(0, s))];
}

function subproof(m: number, d: Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [mth(d)];
  const s = k(d.length);
  return m <= s
    ? [...subproof(m, d.slice(0, s), b), mth(d.slice(s))]
    : [...subproof(m - s, d.slice(s), false), mth(d.slice(0, s))];
}

// Record hashes: 64 hex digits each, as the chain makes them.
const records = Array.from({ length: 300 }, (_, i) =>
  createHash('sha256')
    .update(`record ${i + 1}`)
    .digest('hex'),
);
const raw = records.map((h) => Buffer.from(h, 'hex'));
const leaves = records.map(leafHash);
const subtreeOf = (d: Buffer[]) => async (from: number, to: number) => mth(d.slice(from, to));
const flip = (h: Buffer) => {
  const c = Buffer.from(h);
  c[0]! ^= 1;
  return c;
};

it('the reference splits where RFC 9162 says (largest power of two below n)', () => {
  expect([2, 3, 4, 5, 8, 9, 300].map(k)).toEqual([1, 2, 2, 4, 4, 8, 256]);
});

it('roots: every size 1 … 300, by rootOf and by the accumulator, equal the reference', () => {
  const acc = new MerkleAccumulator();
  for (let n = 1; n <= 300; n++) {
    acc.push(leaves[n - 1]!);
    const expected = mth(raw.slice(0, n));
    expect(rootOf(leaves.slice(0, n)).equals(expected)).toBe(true);
    expect(acc.root().equals(expected)).toBe(true);
  }
});

it('inclusion: each leaf of trees to 64, a sample to 300: as the reference, verified; changed, refused', async () => {
  for (let n = 1; n <= 300; n++) {
    const d = raw.slice(0, n);
    const root = mth(d);
    const ms = n <= 64 ? Array.from({ length: n }, (_, i) => i) : [0, 1, n >> 1, n - 2, n - 1, (n * 7) % n];
    for (const m of ms) {
      const proof = await inclusionProof(m, n, subtreeOf(d));
      expect(proof.map((h) => h.toString('hex'))).toEqual(path(m, d).map((h) => h.toString('hex')));
      expect(verifyInclusion(m, n, leaves[m]!, proof, root)).toBe(true);
      expect(verifyInclusion(m, n, flip(leaves[m]!), proof, root)).toBe(false);
      if (proof.length)
        expect(verifyInclusion(m, n, leaves[m]!, [flip(proof[0]!), ...proof.slice(1)], root)).toBe(false);
      if (n > 1) expect(verifyInclusion((m + 1) % n, n, leaves[m]!, proof, root)).toBe(false);
      // Against the root of another tree (one record more), the same proof fails.
      if (n < 300) expect(verifyInclusion(m, n + 1, leaves[m]!, proof, mth(raw.slice(0, n + 1)))).toBe(false);
    }
  }
});

it('consistency: every pair up to 64, a sample up to 300: as the reference, verified; changed, refused', async () => {
  for (let n = 1; n <= 300; n++) {
    const d = raw.slice(0, n);
    const ms = n <= 64 ? Array.from({ length: n }, (_, i) => i + 1) : [1, 2, 63, 64, 65, n >> 1, n - 1, n];
    for (const m of ms) {
      const proof = await consistencyProof(m, n, subtreeOf(d));
      expect(proof.map((h) => h.toString('hex'))).toEqual(
        (m === n ? [] : subproof(m, d, true)).map((h) => h.toString('hex')),
      );
      const [r1, r2] = [mth(raw.slice(0, m)), mth(d)];
      expect(verifyConsistency(m, n, r1, r2, proof)).toBe(true);
      if (m < n) {
        expect(verifyConsistency(m, n, flip(r1), r2, proof)).toBe(false);
        expect(verifyConsistency(m, n, r1, flip(r2), proof)).toBe(false);
        expect(verifyConsistency(m, n, r1, r2, [flip(proof[0]!), ...proof.slice(1)])).toBe(false);
        expect(verifyConsistency(m, n, r1, r2, [])).toBe(false);
      }
    }
  }
});

it('a leaf is the hash of 0x00 and the record hash; bad input is refused', () => {
  expect(leafHash(records[0]!).equals(sha(Buffer.from([0]), raw[0]!))).toBe(true);
  expect(() => leafHash('not hex')).toThrow();
  expect(verifyInclusion(-1, 3, leaves[0]!, [], mth(raw.slice(0, 3)))).toBe(false);
  expect(verifyInclusion(0, 1, leaves[0]!, [], mth(raw.slice(0, 1)))).toBe(true);
  expect(verifyConsistency(0, 3, sha(), mth(raw.slice(0, 3)), [])).toBe(false);
});
