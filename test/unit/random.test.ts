import { secureRandomBytes } from '../../src/platform/random';

describe('secureRandomBytes', () => {
  it('hands out slices of the size asked, never the same one twice, across refills of its pool', () => {
    const seen = new Set<string>();
    // 4 KiB pool: 2,000 values of 16 bytes refill it several times, with sizes that do not divide it.
    for (let i = 0; i < 2000; i++) {
      const n = i % 3 === 0 ? 6 : 16;
      const bytes = secureRandomBytes(n);
      expect(bytes).toHaveLength(n);
      seen.add(bytes.toString('hex'));
    }
    expect(seen.size).toBe(2000);
  });

  it('gives the caller its own copy: changing it changes nothing that is handed out later', () => {
    const a = secureRandomBytes(16);
    a.fill(0);
    expect(secureRandomBytes(16).equals(Buffer.alloc(16))).toBe(false);
  });

  it('refuses sizes outside 1 to 256', () => {
    for (const n of [0, -1, 1.5, 257]) expect(() => secureRandomBytes(n)).toThrow(RangeError);
  });
});
