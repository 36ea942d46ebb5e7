import { createHash } from 'node:crypto';
import type { Outcome } from '../platform/vocabulary';

/**
 * The audit hash chain, as pure functions shared by the writer, the database verifier and the
 * offline verifier of exports. A record's content is the canonical JSON of
 * { seq, recordedAt, type, accountId, outcome, data }; its body the same without seq and recordedAt.
 *
 * Format 2 (every record written since migration 0005):
 *   contentHash = sha256hex(body)                                          (before the chain lock)
 *   hash        = sha256hex(prevHash "\n" seq "\n" recordedAt "\n" contentHash)   (under it)
 * Format 1 (records written before):
 *   hash        = sha256hex(prevHash "\n" content)
 * The prevHash of seq 1 is 64 zeros. A chain may begin in format 1 and continue in format 2,
 * never the other way round.
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

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Format 1. */
export const chainHashV1 = (prevHash: string, content: string) =>
  createHash('sha256').update(prevHash).update('\n').update(content).digest('hex');

/** Format 2: a record's link, from the previous one and its content hash. */
export const linkHash = (prevHash: string, seq: number, recordedAt: string, contentHash: string) =>
  sha256(`${prevHash}\n${seq}\n${recordedAt}\n${contentHash}`);

export const contentHashOf = (body: string) => sha256(body);

/** The body of a record's content: the content without seq and recordedAt, canonical. */
export function bodyOf(content: string): string {
  const { seq: _seq, recordedAt: _at, ...body } = JSON.parse(content) as Record<string, Json>;
  return canonicalJson(body);
}

/**
 * Which format's hash a record carries, or undefined when neither matches. Format 1 is checked
 * first: it needs no parse.
 */
export function hashFormat(r: VerifiableRecord & { readonly recordedAt?: string }): 1 | 2 | undefined {
  if (chainHashV1(r.prevHash, r.content) === r.hash) return 1;
  let recordedAt: string;
  try {
    recordedAt = String((JSON.parse(r.content) as { recordedAt: unknown }).recordedAt);
    if (linkHash(r.prevHash, r.seq, recordedAt, contentHashOf(bodyOf(r.content))) === r.hash) return 2;
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * A draft with its canonical content computed up to the two fields only the chain can give
 * (seq, recordedAt), and its content hash. The expensive part (sorting, encoding and hashing)
 * happens here, before the chain head is locked; `seal` then only assigns and links.
 */
export interface PreparedDraft {
  readonly type: AuditType;
  readonly accountId: string | null;
  readonly outcome: Outcome | null;
  /** Canonical JSON up to `"outcome":…,` (keys sort: accountId, data, outcome, recordedAt, seq, type). */
  readonly head: string;
  /** Canonical JSON from `"type":` to the end. */
  readonly tail: string;
  readonly contentHash: string;
}

export function prepare(d: Unchained): PreparedDraft {
  const [accountId, data, outcome] = [canonicalJson(d.accountId), canonicalJson(d.data), canonicalJson(d.outcome)];
  const head = `{"accountId":${accountId},"data":${data},"outcome":${outcome},`;
  const tail = `"type":${canonicalJson(d.type)}}`;
  return {
    type: d.type,
    accountId: d.accountId,
    outcome: d.outcome,
    head,
    tail,
    contentHash: contentHashOf(head + tail),
  };
}

/** The full content of a prepared draft at its place. */
export const contentAt = (d: Pick<PreparedDraft, 'head' | 'tail'>, seq: number, recordedAt: string) =>
  `${d.head}"recordedAt":${JSON.stringify(recordedAt)},"seq":${seq},${d.tail}`;

/** Places drafts after `head`, in order, all recorded at `recordedAt`. */
export function seal(drafts: readonly PreparedDraft[], head: ChainHead, recordedAt: Date): ChainedRecord[] {
  let { seq, hash } = head;
  const at = recordedAt.toISOString();
  return drafts.map((d) => {
    seq += 1;
    const prevHash = hash;
    hash = linkHash(prevHash, seq, at, d.contentHash);
    const content = contentAt(d, seq, at);
    return { seq, recordedAt, type: d.type, accountId: d.accountId, outcome: d.outcome, content, prevHash, hash };
  });
}
