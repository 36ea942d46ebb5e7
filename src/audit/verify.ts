import { GENESIS_HASH, hashFormat, type VerifiableRecord } from './chain';

/**
 * Checks a stream of chained records: each hash recomputed from its content (either format, see
 * chain.ts), and, where the
 * records are contiguous (the whole chain, or an unfiltered export), every link and every
 * sequence number. Used on exported files offline and on the database. Remembers the first
 * problem, naming its sequence number.
 */

export interface Problem {
  readonly seq: number;
  readonly problem: string;
}

export class ChainVerifier {
  count = 0;
  first: VerifiableRecord | undefined;
  last: VerifiableRecord | undefined;
  problem: Problem | undefined;
  /** The hash format of the last record: the chain moves from format 1 to 2 (or 3), never back. */
  private format: 1 | 2 = 1;

  /**
   * `fromGenesis`: the first record must be seq 1, after the genesis hash; `after`: it must follow
   * that record (the last one archived, when the online log is checked on its own).
   */
  constructor(
    private readonly o: {
      readonly contiguous: boolean;
      readonly fromGenesis?: boolean;
      readonly after?: {
        readonly seq: number;
        readonly hash: string;
        /** What that record is, for the report: the last archived one unless said. */
        readonly what?: string;
      };
    },
  ) {}

  push(r: VerifiableRecord): void {
    this.count++;
    this.first ??= r;
    const prev = this.last;
    this.last = r;
    this.problem ??= this.check(r, prev);
  }

  private check(r: VerifiableRecord, prev: VerifiableRecord | undefined): Problem | undefined {
    if (!Number.isSafeInteger(r.seq) || r.seq < 1)
      return problem(prev ? prev.seq + 1 : 1, 'a record has no valid sequence number');
    if (this.o.contiguous) {
      const start = this.o.after ?? (this.o.fromGenesis ? { seq: 0, hash: GENESIS_HASH } : undefined);
      const expected = prev ? prev.seq + 1 : start ? start.seq + 1 : r.seq;
      if (r.seq > expected)
        return problem(
          expected,
          `missing: the sequence jumps from ${expected - 1} to ${r.seq} (a record was deleted or moved)`,
        );
      if (r.seq < expected)
        return problem(
          r.seq,
          `out of place: seq ${r.seq} comes after seq ${prev?.seq} (a record was inserted, repeated or moved)`,
        );
      const wantPrev = prev ? prev.hash : (start?.hash ?? r.prevHash);
      if (r.prevHash !== wantPrev) {
        return problem(
          r.seq,
          prev
            ? `broken link: prevHash is not the hash of seq ${prev.seq} (a record before it was altered, ` +
                `inserted or removed)`
            : start?.seq
              ? `broken link: the first record does not follow ${this.o.after?.what ?? 'the last archived one'} ` +
                `(seq ${start.seq})`
              : 'broken link: the first record does not follow the genesis hash',
        );
      }
    } else if (prev && r.seq <= prev.seq) {
      return problem(r.seq, `out of order: seq ${r.seq} comes after seq ${prev.seq}`);
    }
    const format = hashFormat(r);
    if (!format) return problem(r.seq, 'altered: the content does not match its hash');
    // Formats 2 and 3 are one era (a record without an account is hashed alike in both): only 1 never comes back.
    const era = format === 1 ? 1 : 2;
    if (era < this.format) return problem(r.seq, 'altered: a format 1 hash after format 2 records');
    this.format = era;
    return undefined;
  }
}

const problem = (seq: number, text: string): Problem => ({ seq, problem: text });
