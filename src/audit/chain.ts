import { createHash, hash } from 'node:crypto';
import { secureRandomBytes } from '../platform/random';
import type { Outcome } from '../platform/vocabulary';

/**
 * The audit hash chain, as pure functions shared by the writer, the database verifier and the
 * offline verifier of exports. A record's content is the canonical JSON of
 * { seq, recordedAt, type, accountId, outcome, data }; its body the same without seq and recordedAt.
 *
 * Format 2 (every record written since migration 0005):
 *   contentHash = sha256hex(body)                                          (before the chain lock)
 *   hash        = sha256hex(prevHash "\n" seq "\n" recordedAt "\n" contentHash)   (under it)
 * Format 3 (every record that names an account, since migration 0012): as format 2, but the body
 * that is hashed holds, in place of the account id, a commitment to it:
 *   accountCommitment = sha256hex("optgate-account" "\n" accountSalt "\n" accountId)
 *   contentHash = sha256hex(body with accountId := accountCommitment)
 * with a random 128-bit `accountSalt` per record, kept beside the record (not in its content).
 * The content stored and exported still holds the account id; with the salt, anyone can recompute
 * the commitment. Dropping both and keeping the commitment (a pseudonymised archive) leaves the
 * hash, the chain and every Merkle proof intact, and the commitment says nothing of the id: the
 * salt is what stops a dictionary of account ids.
 * Format 1 (records written before):
 *   hash        = sha256hex(prevHash "\n" content)
 * The prevHash of seq 1 is 64 zeros. A chain may begin in format 1 and continue in format 2 or 3,
 * never back to format 1.
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
  /** The canonical JSON that was hashed (format 3: with the account id where the commitment was hashed). */
  readonly content: string;
  readonly prevHash: string;
  readonly hash: string;
  /** Format 3: the salt of the account commitment (hex). */
  readonly accountSalt?: string;
  /** Format 3, pseudonymised: the commitment itself, the account id and its salt dropped. */
  readonly accountCommitment?: string;
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

/**
 * JSON.rawJSON (Node 21+; not yet in TypeScript's lib): a value written as its source text. The streaming filter
 * parses numbers into it, so that a record it re-serialises keeps its numbers exactly as they were written (a large
 * integer, 1.50). The audit's own records never hold one.
 */
export const rawJson = JSON as unknown as {
  rawJSON(text: string): Json;
  isRawJSON?(value: unknown): boolean;
};

/** Node 20 has no JSON.isRawJSON (nor the source text that would make one): there, nothing is raw JSON. */
const isRawJson = (value: unknown): boolean => rawJson.isRawJSON?.(value) ?? false;

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
      if (isRawJson(value)) return JSON.stringify(value);
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

/** One-shot hashing (node 20.12+): no Hash object per call, on a path that hashes several times per decision. */
const sha256 = (text: string) => hash('sha256', text, 'hex');

/** Format 1. */
export const chainHashV1 = (prevHash: string, content: string) =>
  createHash('sha256').update(prevHash).update('\n').update(content).digest('hex');

/** Format 2: a record's link, from the previous one and its content hash. */
export const linkHash = (prevHash: string, seq: number, recordedAt: string, contentHash: string) =>
  sha256(`${prevHash}\n${seq}\n${recordedAt}\n${contentHash}`);

export const contentHashOf = (body: string) => sha256(body);

/** Format 3: what a record's hash commits to in place of its account id. */
export const accountCommitment = (salt: string, accountId: string) => sha256(`optgate-account\n${salt}\n${accountId}`);

/** A fresh account salt: 128 random bits, hex. */
export const newAccountSalt = () => secureRandomBytes(16).toString('hex');

/** The canonical head of a body, `{"accountId":…,"data":…,"outcome":…,` (keys sort: accountId, data, outcome). */
export const bodyHead = (accountId: string | null, data: string, outcome: Outcome | null) =>
  `{"accountId":${canonicalJson(accountId)},"data":${data},"outcome":${canonicalJson(outcome)},`;

/** The body of a record's content: the content without seq and recordedAt, canonical. */
export function bodyOf(content: string): string {
  const { seq: _seq, recordedAt: _at, ...body } = JSON.parse(content) as Record<string, Json>;
  return canonicalJson(body);
}

/**
 * Which format's hash a record carries, or undefined when none matches. A record with an account
 * salt or commitment is format 3 or nothing. Canonical content (what the writer stores, what an
 * export line holds) is split by text, without a parse; content in any other form is parsed and
 * encoded again, as before.
 */
export function hashFormat(r: VerifiableRecord): 1 | 2 | 3 | undefined {
  const committed = r.accountSalt !== undefined || r.accountCommitment !== undefined;
  const commit = (accountId: string) => r.accountCommitment ?? accountCommitment(r.accountSalt!, accountId);
  const split = splitCanonical(r.content);
  if (split) {
    const body = committed ? committedBody(split.body, commit) : split.body;
    if (body !== undefined && linkHash(r.prevHash, r.seq, split.recordedAt, contentHashOf(body)) === r.hash)
      return committed ? 3 : 2;
  }
  if (!committed && chainHashV1(r.prevHash, r.content) === r.hash) return 1;
  try {
    const { seq: _seq, recordedAt, ...body } = JSON.parse(r.content) as Record<string, Json>;
    if (committed) {
      if (typeof body.accountId !== 'string') return undefined;
      body.accountId = commit(body.accountId);
    }
    const contentHash = contentHashOf(canonicalJson(body));
    if (linkHash(r.prevHash, r.seq, String(recordedAt), contentHash) === r.hash) return committed ? 3 : 2;
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * Canonical content's body and time, by text: its top-level keys end `…,"recordedAt":"…","seq":N,"type":"…"}`
 * (sorted), so the body is the content without that time and sequence number. Undefined for content of
 * another shape.
 */
function splitCanonical(content: string): { body: string; recordedAt: string } | undefined {
  const at = content.lastIndexOf(',"recordedAt":"');
  const type = content.lastIndexOf(',"type":"');
  if (at < 0 || type < at) return undefined;
  const m = /^,"recordedAt":"([^"\\]*)","seq":\d+$/.exec(content.slice(at, type));
  return m ? { body: content.slice(0, at) + content.slice(type), recordedAt: m[1]! } : undefined;
}

/** A canonical body with its account id (a string: the body's first member) replaced by its commitment. */
function committedBody(body: string, commit: (accountId: string) => string): string | undefined {
  const prefix = '{"accountId":"';
  if (!body.startsWith(prefix)) return undefined;
  // Inside a JSON string a quote is always escaped: the first `","data":` ends the id.
  const end = body.indexOf('","data":', prefix.length);
  if (end < 0) return undefined;
  const accountId = JSON.parse(body.slice(prefix.length - 1, end + 1)) as string;
  return `{"accountId":${JSON.stringify(commit(accountId))}${body.slice(end + 1)}`;
}

/**
 * A draft with its canonical content computed up to the two fields only the chain can give
 * (seq, recordedAt), and its content hash. The expensive part (sorting, encoding and hashing)
 * happens here, before the chain head is locked; `seal` then only assigns and links.
 */
export interface PreparedDraft {
  readonly type: AuditType;
  readonly accountId: string | null;
  /** Format 3: the salt of the account commitment the content hash was made with. */
  readonly accountSalt?: string;
  readonly outcome: Outcome | null;
  /** Canonical JSON up to `"outcome":…,` (keys sort: accountId, data, outcome, recordedAt, seq, type). */
  readonly head: string;
  /** Canonical JSON from `"type":` to the end. */
  readonly tail: string;
  readonly contentHash: string;
}

/** A record's content up to its place, and its content hash: format 3 when it names an account (a salt is drawn). */
export function prepare(d: Unchained): PreparedDraft {
  const salt = d.accountId === null ? undefined : newAccountSalt();
  return prepared(d.type, d.accountId, canonicalJson(d.data), d.outcome, salt);
}

/** The prepared draft of a body given as canonical parts; with a salt, its content hash commits to the account. */
export function prepared(
  type: AuditType,
  accountId: string | null,
  data: string,
  outcome: Outcome | null,
  accountSalt: string | undefined,
): PreparedDraft {
  const head = bodyHead(accountId, data, outcome);
  const tail = `"type":${canonicalJson(type)}}`;
  const committed = accountSalt !== undefined && accountId !== null;
  const hashed = committed ? bodyHead(accountCommitment(accountSalt, accountId), data, outcome) : head;
  return {
    type,
    accountId,
    ...(committed ? { accountSalt } : {}),
    outcome,
    head,
    tail,
    contentHash: contentHashOf(hashed + tail),
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
    const { type, accountId, outcome, accountSalt } = d;
    return {
      seq,
      recordedAt,
      type,
      accountId,
      outcome,
      content,
      prevHash,
      hash,
      ...(accountSalt ? { accountSalt } : {}),
    };
  });
}
