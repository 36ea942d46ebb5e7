import { randomFillSync } from 'node:crypto';

/** A small, fast, seedable generator (mulberry32): the same seed gives the same sequence. Not for secrets. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Bytes drawn from the system's CSPRNG at once, then handed out in slices (as node's randomUUID does). */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolAt = POOL_BYTES;

/**
 * `n` cryptographically random bytes (at most 256), a copy of the caller's own. The same generator as
 * crypto.randomBytes, without a call into it for each small value: on the decision path that call was the largest
 * single cost of preparing an audit record.
 */
export function secureRandomBytes(n: number): Buffer {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError('secureRandomBytes: 1 to 256 bytes');
  if (poolAt + n > POOL_BYTES) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = Buffer.from(pool.subarray(poolAt, poolAt + n));
  poolAt += n;
  return out;
}
