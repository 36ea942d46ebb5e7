import { hash } from 'node:crypto';
import { secureRandomBytes } from '../platform/random';
import type { AllowReason, CategoryResult, DecisionEndpoint, DenyReason } from '../platform/vocabulary';
import { linkHash, type PreparedDraft, prepared } from './chain';

/**
 * Decision records, stored compactly (format 2): what every account judged by one call shares
 * is stored once (a header), and each account's verdict in a few bytes. The record a regulator,
 * an export or the verifier sees is rebuilt from the two, byte for byte the canonical content
 * that was hashed: the same function builds it when writing (for the content hash) and when
 * reading.
 *
 * Verdict bytes: byte 0 = flags (bit 0: allow; bit 1: a passed mask follows); then per category of
 * the header, in order, one byte, the reason's code (REASONS), followed for consent_granted by the
 * consent id (16 bytes) and its expiry (6 bytes, milliseconds since the epoch); then, for an allow,
 * validUntil (6 bytes); then, with bit 1, the categories the streaming filter passed on in the
 * record (`passed`): one bit per category of the header (bit i % 8 of byte i / 8), as many bytes
 * as that takes. A record without bit 1 (every record before it, every call but the filter with a
 * schema) has no `passed` member.
 */

/** A decision request: what every account judged by one call shares. */
export interface DecisionHeader {
  readonly decisionId: string;
  readonly endpoint: DecisionEndpoint;
  readonly clientId: string;
  readonly requestId: string;
  readonly purpose: string;
  readonly categories: readonly string[];
  readonly recipient?: string;
  readonly reference?: string;
  readonly evaluatedAt: Date;
}

/** One account's verdict, as the engine gave it. */
export interface AccountVerdict {
  readonly accountId: string;
  readonly allow: boolean;
  /** Present for an allow. */
  readonly validUntil?: Date;
  readonly results: readonly CategoryResult[];
  /** The streaming filter with a record schema: the categories of the fields it passed on (none: dropped). */
  readonly passed?: readonly string[];
}

/** Reason codes of the verdict bytes: append only, never reorder (records hold the codes). */
export const REASONS: readonly (AllowReason | DenyReason)[] = [
  'exception',
  'consent_granted',
  'not_opted_out',
  'exception_not_applicable',
  'no_consent',
  'consent_revoked',
  'consent_expired',
  'notice_superseded',
  'opted_out',
  'unknown_account',
  'account_closed',
  'unknown_purpose',
  'unknown_category',
  'consent_lapsed',
  'recipient_required',
  'unknown_recipient',
  'recipient_kind_not_allowed',
  'recipient_not_covered',
];
const CODE = new Map(REASONS.map((r, i) => [r, i] as const));
const ALLOWING = new Set<string>(['exception', 'consent_granted', 'not_opted_out']);
const GRANTED = CODE.get('consent_granted')!;
const ALLOW = 1;
const PASSED = 2;
const maskBytes = (categories: number) => Math.ceil(categories / 8);

export function encodeVerdict(categories: readonly string[], v: AccountVerdict): Buffer {
  if (v.results.length !== categories.length) throw new Error('a verdict has one result per category');
  const mask = v.passed ? maskBytes(categories.length) : 0;
  let size = 1 + categories.length + (v.allow ? 6 : 0) + mask;
  for (const r of v.results) if (r.allow && r.reason === 'consent_granted') size += 22;
  const out = Buffer.allocUnsafe(size);
  out[0] = (v.allow ? ALLOW : 0) | (v.passed ? PASSED : 0);
  let at = 1;
  v.results.forEach((r, i) => {
    if (r.category !== categories[i]) throw new Error('results follow the order of the categories');
    const code = CODE.get(r.reason)!;
    out[at++] = code;
    if (code === GRANTED && r.allow) {
      if (!r.consentId || !r.expiresAt) throw new Error('consent_granted cites its consent and its expiry');
      out.write(r.consentId.replaceAll('-', ''), at, 16, 'hex');
      out.writeUIntBE(r.expiresAt.getTime(), at + 16, 6);
      at += 22;
    }
  });
  if (v.allow) {
    out.writeUIntBE(v.validUntil!.getTime(), at, 6);
    at += 6;
  }
  if (v.passed) {
    out.fill(0, at);
    for (const category of v.passed) {
      const i = categories.indexOf(category);
      if (i < 0) throw new Error('a record passes on only categories of its header');
      out[at + (i >> 3)]! |= 1 << (i & 7);
    }
  }
  return out;
}

const uuidOf = (hex: string) =>
  `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
const iso = (ms: number) => new Date(ms).toISOString();

/** Whether the verdict bytes say allow (for filters): bit 0 of byte 0. */
export const verdictAllows = (verdict: Uint8Array) => (verdict[0]! & ALLOW) === ALLOW;

/**
 * Builds the canonical bodies of one header's records. The parts every account shares are encoded
 * once; each account adds its id, its results and its validUntil.
 */
export class DecisionBodies {
  /** The data's members before `passed`, and from the one after it to the opening of `results`. */
  private readonly dataHead: string;
  private readonly dataMiddle: string;
  private readonly categoryJson: readonly string[];

  constructor(h: DecisionHeader) {
    // Keys in canonical (sorted) order: categories, clientId, decisionId, endpoint, evaluatedAt, passed, purpose,
    // recipient, reference, requestId, results, validUntil.
    this.dataHead =
      `{"categories":${JSON.stringify(h.categories)},"clientId":${JSON.stringify(h.clientId)},` +
      `"decisionId":${JSON.stringify(h.decisionId)},"endpoint":${JSON.stringify(h.endpoint)},` +
      `"evaluatedAt":${JSON.stringify(h.evaluatedAt.toISOString())},`;
    this.dataMiddle =
      `"purpose":${JSON.stringify(h.purpose)},` +
      (h.recipient === undefined ? '' : `"recipient":${JSON.stringify(h.recipient)},`) +
      (h.reference === undefined ? '' : `"reference":${JSON.stringify(h.reference)},`) +
      `"requestId":${JSON.stringify(h.requestId)},"results":[`;
    this.categoryJson = h.categories.map((c) => JSON.stringify(c));
  }

  /**
   * The record of one account, prepared as the chain wants it (content up to seq and recordedAt,
   * content hash; format 3 with the account's salt, format 2 for a header from before salts).
   */
  prepared(accountId: string, verdict: Uint8Array, accountSalt?: string): PreparedDraft {
    const flags = verdict[0]!;
    if (flags & ~(ALLOW | PASSED)) throw new Error('unknown flags in a verdict');
    const allow = (flags & ALLOW) === ALLOW;
    let at = 1;
    let results = '';
    for (let i = 0; i < this.categoryJson.length; i++) {
      const reason = REASONS[verdict[at++]!];
      if (reason === undefined) throw new Error('unknown reason code in a verdict');
      const category = this.categoryJson[i]!;
      if (i) results += ',';
      if (!ALLOWING.has(reason)) results += `{"allow":false,"category":${category},"reason":"${reason}"}`;
      else if (reason === 'consent_granted') {
        const id = uuidOf(Buffer.from(verdict.subarray(at, at + 16)).toString('hex'));
        const expiresAt = iso(Buffer.from(verdict.subarray(at + 16, at + 22)).readUIntBE(0, 6));
        at += 22;
        results += `{"allow":true,"category":${category},"consentId":"${id}",`;
        results += `"expiresAt":"${expiresAt}","reason":"${reason}"}`;
      } else results += `{"allow":true,"category":${category},"reason":"${reason}"}`;
    }
    const maskAt = at + (allow ? 6 : 0);
    const mask = flags & PASSED ? maskBytes(this.categoryJson.length) : 0;
    if (maskAt + mask !== verdict.length) throw new Error('verdict bytes of the wrong length');
    const validUntil = allow
      ? `,"validUntil":"${iso(Buffer.from(verdict.subarray(at, at + 6)).readUIntBE(0, 6))}"`
      : '';
    const passed = mask ? `"passed":[${this.passedJson(verdict.subarray(maskAt))}],` : '';
    const data = `${this.dataHead}${passed}${this.dataMiddle}${results}]${validUntil}}`;
    return prepared('decision', accountId, data, allow ? 'allow' : 'deny', accountSalt);
  }

  /** The header's categories whose bit the mask sets, in header order. */
  private passedJson(mask: Uint8Array): string {
    const passed: string[] = [];
    this.categoryJson.forEach((category, i) => {
      if (mask[i >> 3]! & (1 << (i & 7))) passed.push(category);
    });
    return passed.join(',');
  }
}

/**
 * The account salt of the record at `position` of a decision call (format 3): derived from the
 * call's random seed, which only the database keeps (one per call, not one per account), so that
 * a record's salt can be given out (in an export) without giving out any other.
 */
export const saltAt = (seed: Uint8Array, position: number) =>
  hash('sha256', Buffer.concat([seed, Buffer.from(`\n${position}`)]), 'hex').slice(0, 32);

/**
 * A link is kept (in the header) before every TILE-th record: rebuilding any record's link reads at most TILE - 1
 * others.
 */
export const TILE = 64;

/** A decision call ready for the chain: each account's verdict bytes and content hash, computed before the lock. */
export interface DecisionItem {
  readonly header: DecisionHeader;
  /** The seed of its records' account salts (saltAt). */
  readonly seed: Buffer;
  readonly verdicts: readonly { readonly accountId: string; readonly verdict: Buffer; readonly contentHash: string }[];
}

export function prepareDecision(header: DecisionHeader, verdicts: readonly AccountVerdict[]): DecisionItem {
  const bodies = new DecisionBodies(header);
  const seed = secureRandomBytes(16);
  return {
    header,
    seed,
    verdicts: verdicts.map((v, i) => {
      const verdict = encodeVerdict(header.categories, v);
      const { contentHash } = bodies.prepared(v.accountId, verdict, saltAt(seed, i));
      return { accountId: v.accountId, verdict, contentHash };
    }),
  };
}

/** A decision call at its place in the chain: its first seq, its tile links (binary) and the link after it. */
export interface SealedDecision {
  readonly seq: number;
  readonly item: DecisionItem;
  readonly links: Buffer;
  readonly lastHash: string;
}

/** Under the chain lock: only links are made, one small hash per account. */
export function sealDecision(
  item: DecisionItem,
  prevHash: string,
  firstSeq: number,
  recordedAt: string,
): SealedDecision {
  const tiles: Buffer[] = [];
  let hash = prevHash;
  item.verdicts.forEach((v, i) => {
    if (i % TILE === 0) tiles.push(Buffer.from(hash, 'hex'));
    hash = linkHash(hash, firstSeq + i, recordedAt, v.contentHash);
  });
  tiles.push(Buffer.from(hash, 'hex'));
  return { seq: firstSeq, item, links: Buffer.concat(tiles), lastHash: hash };
}

/** The link before the record at `position` of a header, when it is a tile start (or the one after the last). */
export const tileLink = (links: Uint8Array, tile: number) =>
  Buffer.from(links.subarray(tile * 32, tile * 32 + 32)).toString('hex');
