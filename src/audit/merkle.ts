import { createHash } from 'node:crypto';

/**
 * The Merkle tree over the audit log (RFC 9162, §2.1): leaf `i` is record `seq = i + 1`, its input
 * the record's chain hash (32 bytes); `leaf = SHA-256(0x00 ‖ record hash)`, `node = SHA-256(0x01 ‖
 * left ‖ right)`. A tree of `n` leaves splits at `k`, the largest power of two below `n`. Proofs are
 * made over any function that gives the hash of a range of leaves (`Subtree`), and verified here
 * with nothing but hashes: this file is what a verifier needs.
 */

export type Hash = Buffer;

/** The hash of leaves `[from, to)`: `MTH(D[from:to])`. */
export type Subtree = (from: number, to: number) => Promise<Hash>;

export function leafHash(recordHash: string): Hash {
  if (!/^[0-9a-f]{64}$/.test(recordHash)) throw new Error('a record hash is 64 hexadecimal digits');
  return createHash('sha256').update(LEAF).update(Buffer.from(recordHash, 'hex')).digest();
}

export function nodeHash(left: Hash, right: Hash): Hash {
  return createHash('sha256').update(NODE).update(left).update(right).digest();
}

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** The largest power of two strictly below `n` (n ≥ 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const isPowerOfTwo = (n: number) => n > 0 && 2 ** Math.round(Math.log2(n)) === n;

/** MTH of the given leaf hashes, by the definition (for small ranges). */
export function rootOf(leaves: readonly Hash[]): Hash {
  if (leaves.length === 0) return createHash('sha256').digest();
  if (leaves.length === 1) return leaves[0]!;
  const k = splitPoint(leaves.length);
  return nodeHash(rootOf(leaves.slice(0, k)), rootOf(leaves.slice(k)));
}

/** PATH(m, D[0:n]) (RFC 9162 §2.1.3.1): the inclusion proof of leaf `m` in the tree of size `n`. */
export async function inclusionProof(m: number, n: number, subtree: Subtree): Promise<Hash[]> {
  if (!(Number.isSafeInteger(m) && Number.isSafeInteger(n) && m >= 0 && m < n)) throw new RangeError('0 ≤ m < n');
  const path = async (m: number, from: number, to: number): Promise<Hash[]> => {
    if (to - from === 1) return [];
    const k = splitPoint(to - from);
    return m < k
      ? [...(await path(m, from, from + k)), await subtree(from + k, to)]
      : [...(await path(m - k, from + k, to)), await subtree(from, from + k)];
  };
  return path(m, 0, n);
}

/** PROOF(m, D[0:n]) (RFC 9162 §2.1.4.1): that the tree of size `n` extends the tree of size `m`. */
export async function consistencyProof(m: number, n: number, subtree: Subtree): Promise<Hash[]> {
  if (!(Number.isSafeInteger(m) && Number.isSafeInteger(n) && m >= 1 && m <= n)) throw new RangeError('1 ≤ m ≤ n');
  const sub = async (m: number, from: number, to: number, whole: boolean): Promise<Hash[]> => {
    if (m === to - from) return whole ? [] : [await subtree(from, to)];
    const k = splitPoint(to - from);
    return m <= k
      ? [...(await sub(m, from, from + k, whole)), await subtree(from + k, to)]
      : [...(await sub(m - k, from + k, to, false)), await subtree(from, from + k)];
  };
  return sub(m, 0, n, true);
}

/** RFC 9162 §2.1.3.2: does `proof` show leaf `leafIndex` (hash `leaf`) in the tree of `treeSize` with `root`? */
export function verifyInclusion(
  leafIndex: number,
  treeSize: number,
  leaf: Hash,
  proof: readonly Hash[],
  root: Hash,
): boolean {
  if (!(Number.isSafeInteger(leafIndex) && Number.isSafeInteger(treeSize) && leafIndex >= 0 && leafIndex < treeSize))
    return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 §2.1.4.2: does `proof` show that the tree (`size2`, `root2`) extends (`size1`, `root1`)? */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Hash,
  root2: Hash,
  proof: readonly Hash[],
): boolean {
  if (!(Number.isSafeInteger(size1) && Number.isSafeInteger(size2) && size1 >= 1 && size1 <= size2)) return false;
  if (size1 === size2) return proof.length === 0 && root1.equals(root2);
  if (!proof.length) return false;
  let path = [...proof];
  // A first tree that is a complete subtree is the first node of the path.
  if (isPowerOfTwo(size1)) path = [root1, ...path];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(root1) && sr.equals(root2);
}

/**
 * The root of a growing tree, leaf by leaf, in O(log n) memory: the hashes of the perfect subtrees
 * the leaves so far make, from the left (a "compact range"). `audit verify --db` checks every signed
 * tree head with it while it reads the log once.
 */
export class MerkleAccumulator {
  /** Perfect subtrees from the left: sizes strictly decreasing powers of two. */
  private readonly stack: { size: number; hash: Hash }[] = [];
  size = 0;

  /** Continues a tree of `size` leaves from its frontier (what `frontier()` gave at that size). */
  static resume(size: number, frontier: readonly Hash[]): MerkleAccumulator {
    const sizes = frontierSizes(size);
    if (sizes.length !== frontier.length)
      throw new Error(`a tree of ${size} leaves has ${sizes.length} frontier hashes`);
    const tree = new MerkleAccumulator();
    sizes.forEach((s, i) => {
      tree.stack.push({ size: s, hash: frontier[i]! });
    });
    tree.size = size;
    return tree;
  }

  /** The roots of the perfect subtrees that make the tree so far, left to right: all a later root needs of it. */
  frontier(): Hash[] {
    return this.stack.map((s) => s.hash);
  }

  push(leaf: Hash): void {
    let top = { size: 1, hash: leaf };
    while (this.stack.length && this.stack[this.stack.length - 1]!.size === top.size) {
      const left = this.stack.pop()!;
      top = { size: left.size * 2, hash: nodeHash(left.hash, top.hash) };
    }
    this.stack.push(top);
    this.size++;
  }

  /** MTH of the leaves so far (the empty tree's hash when there are none). */
  root(): Hash {
    if (!this.stack.length) return rootOf([]);
    let hash = this.stack[this.stack.length - 1]!.hash;
    for (let i = this.stack.length - 2; i >= 0; i--) hash = nodeHash(this.stack[i]!.hash, hash);
    return hash;
  }
}

/** The sizes of the perfect subtrees of a tree of `size` leaves, left to right: its binary digits, largest first. */
export function frontierSizes(size: number): number[] {
  const sizes: number[] = [];
  let rest = size;
  for (let bit = 2 ** Math.floor(Math.log2(size || 1)); bit >= 1; bit /= 2) {
    if (rest >= bit) {
      sizes.push(bit);
      rest -= bit;
    }
  }
  return sizes;
}
