import { createHash } from 'node:crypto';
import type { Outcome } from '../platform/vocabulary';

/**
 * The audit hash chain, as pure functions shared by the writer, the database verifier and the
 * offline verifier of exports.
 *
 *   content = canonical JSON of { seq, recordedAt, type, accountId, outcome, data }
 *   hash    = sha256hex(prevHash + "\n" + content)       (prevHash of seq 1: 64 zeros)
 *
 * Canonical JSON: object keys sorted, no whitespace, integers only (no floats, whose text
 * form differs between encoders), undefined members dropped.
 */

export const GENESIS_HASH = '0'.repeat(64);

export const AUDIT_TYPES = ['consent_event', 'decision', 'staff_action'] as const;
export type AuditType = (typeof AUDIT_TYPES)[number];
export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json | undefined };

/** What the chain needs of a record to place it: the kinds of record are records.ts's business. */
export interface Unchained {
  readonly type: AuditType;
  readonly accountId: string | null;
  readonly outcome: Outcome | null;
  readonly data: { readonly [key: string]: Json | undefined };
}

/** What a verifier needs of a record. */
export interface VerifiableRecord {
  readonly seq: number;
  /** The canonical JSON that was hashed. */
  readonly content: string;
  readonly prevHash: string;
  readonly hash: string;
}

/** A record in the chain, with the columns that repeat parts of its content for filtering. */
export interface ChainedRecord extends VerifiableRecord {
  readonly recordedAt: Date;
  readonly type: AuditType;
  readonly accountId: string | null;
  readonly outcome: Outcome | null;
}

export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

export function canonicalJson(value: Json | undefined): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON holds integers only, not ${value}`);
      return String(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
      const entries = Object.entries(value as Record<string, Json | undefined>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot hold ${typeof value}`);
  }
}

export const chainHash = (prevHash: string, content: string) =>
  createHash('sha256').update(prevHash).update('\n').update(content).digest('hex');

/**
 * A draft with its canonical content computed up to the two fields only the chain can give
 * (seq, recordedAt). The expensive part (sorting and encoding `data`) happens here, before the
 * chain head is locked; `seal` then only concatenates and hashes.
 */
export interface PreparedDraft {
  readonly type: AuditType;
  readonly accountId: string | null;
  readonly outcome: Outcome | null;
  /**
   * Canonical JSON up to and including `"recordedAt":` (keys sort: accountId, data, outcome, recordedAt, seq, type).
   */
  readonly head: string;
  /** Canonical JSON from `,"type":` to the end. */
  readonly tail: string;
}

export function prepare(d: Unchained): PreparedDraft {
  const [accountId, data, outcome] = [canonicalJson(d.accountId), canonicalJson(d.data), canonicalJson(d.outcome)];
  const head = `{"accountId":${accountId},"data":${data},"outcome":${outcome},"recordedAt":`;
  return { type: d.type, accountId: d.accountId, outcome: d.outcome, head, tail: `,"type":${canonicalJson(d.type)}}` };
}

/** Places drafts after `head`, in order, all recorded at `recordedAt`. */
export function seal(drafts: readonly PreparedDraft[], head: ChainHead, recordedAt: Date): ChainedRecord[] {
  let { seq, hash } = head;
  const at = JSON.stringify(recordedAt.toISOString());
  return drafts.map((d) => {
    seq += 1;
    const content = `${d.head}${at},"seq":${seq}${d.tail}`;
    const prevHash = hash;
    hash = chainHash(prevHash, content);
    return { seq, recordedAt, type: d.type, accountId: d.accountId, outcome: d.outcome, content, prevHash, hash };
  });
}
