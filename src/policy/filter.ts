import { isUtf8 } from 'node:buffer';
import type { Readable } from 'node:stream';
import { canonicalJson, type Json, rawJson } from '../audit';
import type { RecordSchema } from '../platform/config/catalog';
import { AppError } from '../platform/errors';
import { ACCOUNT_ID } from '../platform/vocabulary';
import type { Verdict } from './engine';

export const MAX_LINE_BYTES = 1 << 20;
const MAX_CHUNK = 1000;
const NEWLINE = 0x0a;
const RETURN = 0x0d;

export type FilterMode = 'redact' | 'drop';

/** How records are judged: as wholes, by account (no schema), or field by field, by what a schema says they hold. */
export interface FilterPlan {
  readonly accountField: string;
  readonly schema?: RecordSchema;
  /** With a schema: remove the fields that may not be used (redact), or drop the record that holds any (drop). */
  readonly mode: FilterMode;
}

/**
 * Judges a chunk's accounts. With `passedOf`, the categories each record passes on are asked for before the chunk is
 * audited, and go into its records.
 */
export type FilterJudge = (
  accountIds: readonly string[],
  passedOf?: (verdict: Verdict, index: number) => readonly string[],
) => Promise<Verdict[]>;

export interface FilterCounts {
  received: number;
  /** Records passed on, whole or redacted. */
  allowed: number;
  /** Lines that are not a UTF-8 JSON object with a valid account id in the account field: never passed on. */
  invalid: number;
  /** Records passed on with fields removed. */
  redacted: number;
}

interface ParsedLine {
  /** The line as it came, without its line end. */
  readonly text: string;
  readonly record: Readonly<Record<string, unknown>>;
  readonly accountId: string;
}

/** What becomes of a record: what is passed on (none: dropped) and the categories it holds. */
interface Outcome {
  readonly out?: string;
  readonly passed: readonly string[];
  readonly redacted?: boolean;
}
const DROPPED: Outcome = { passed: [] };

/**
 * Streams NDJSON records through the decision engine: reads what has arrived, judges it in chunks (each chunk
 * audited before its verdicts come back), writes only what may be used, and goes on. Memory holds one chunk, whatever
 * the size of the stream. The stream is cut into lines on the newline byte and what has arrived of whole lines is
 * decoded once: a character whose bytes arrive in two reads is decoded whole.
 */
export async function filterRecords(
  input: Readable,
  plan: FilterPlan,
  judge: FilterJudge,
  write: (text: string) => Promise<void>,
): Promise<FilterCounts> {
  const counts: FilterCounts = { received: 0, allowed: 0, invalid: 0, redacted: 0 };
  const pending: Line[] = [];
  // The unfinished line: the pieces of it read so far.
  let rest: Buffer[] = [];
  let restBytes = 0;

  const judgeLines = async (lines: readonly Line[]) => {
    const records: ParsedLine[] = [];
    for (const line of lines) {
      if (line !== NOT_UTF8 && !line.trim()) continue;
      counts.received++;
      const parsed = line === NOT_UTF8 ? undefined : parseLine(line, plan.accountField);
      if (parsed) records.push(parsed);
      else counts.invalid++;
    }
    if (!records.length) return;
    const outcomes: Outcome[] = [];
    const shapeRecord = (verdict: Verdict, i: number) => {
      const outcome = shape(records[i]!, plan, verdict);
      outcomes[i] = outcome;
      return outcome.passed;
    };
    const verdicts = await judge(
      records.map((r) => r.accountId),
      plan.schema ? shapeRecord : undefined,
    );
    for (let i = 0; i < records.length; i++) {
      // Without a schema a record passes whole or not at all; with one, only as shaped before it was audited.
      const outcome: Outcome | undefined = plan.schema
        ? outcomes[i]
        : verdicts[i]?.allow === true
          ? { out: `${records[i]!.text}\n`, passed: [] }
          : undefined;
      if (outcome?.out === undefined) continue;
      counts.allowed++;
      if (outcome.redacted) counts.redacted++;
      await write(outcome.out);
    }
  };

  // The request is not destroyed when judging stops early (a 413, a 503): the error handler drains it, so that
  // the caller, perhaps still sending, gets the answer.
  for await (const chunk of input.iterator({ destroyOnReturn: false })) {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    const last = bytes.lastIndexOf(NEWLINE);
    if (last === -1) {
      rest.push(bytes);
      restBytes += bytes.length;
    } else {
      const head = bytes.subarray(0, last);
      linesOf(restBytes ? Buffer.concat([...rest, head], restBytes + head.length) : head, pending);
      rest = [bytes.subarray(last + 1)];
      restBytes = bytes.length - last - 1;
    }
    // An unfinished line counts too: one that arrives whole in a large read is as long as one that does not.
    assertLineLength(restBytes);
    while (pending.length >= MAX_CHUNK) await judgeLines(pending.splice(0, MAX_CHUNK));
    // Whatever has arrived is judged now rather than waiting for a full chunk: a slow producer still gets answers.
    if (pending.length) await judgeLines(pending.splice(0));
  }
  if (restBytes) linesOf(Buffer.concat(rest, restBytes), pending);
  await judgeLines(pending);
  return counts;
}

/** A line, decoded (without its line end), or NOT_UTF8. */
type Line = string | typeof NOT_UTF8;
const NOT_UTF8 = Symbol('not UTF-8');

/**
 * Whole lines (bytes that end where a line ends), decoded at once. 0x0A is never part of a longer UTF-8 sequence, so
 * each line's characters are whole; valid UTF-8 decodes to text that encodes back to the same bytes, so a record
 * passed on as read is passed on byte for byte.
 */
function linesOf(bytes: Buffer, into: Line[]): void {
  if (isUtf8(bytes)) {
    for (const line of bytes.toString('utf8').split('\n')) {
      // Characters are at most 4 bytes: most lines need no count.
      if (line.length * 4 > MAX_LINE_BYTES) assertLineLength(Buffer.byteLength(line));
      into.push(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    return;
  }
  // Some line is not UTF-8: each on its own, so that only that one is invalid.
  for (let start = 0; start <= bytes.length; ) {
    const found = bytes.indexOf(NEWLINE, start);
    const end = found === -1 ? bytes.length : found;
    const line = bytes.subarray(start, end > start && bytes[end - 1] === RETURN ? end - 1 : end);
    assertLineLength(line.length);
    into.push(isUtf8(line) ? line.toString('utf8') : NOT_UTF8);
    start = end + 1;
  }
}

function assertLineLength(bytes: number): void {
  if (bytes > MAX_LINE_BYTES) {
    throw new AppError('payload-too-large', `A record is longer than ${MAX_LINE_BYTES} bytes.`);
  }
}

function parseLine(text: string, accountField: string): ParsedLine | undefined {
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!record || typeof record !== 'object' || Array.isArray(record)) return undefined;
  const fields = record as Record<string, unknown>;
  const id = Object.hasOwn(fields, accountField) ? fields[accountField] : undefined;
  return typeof id === 'string' && ACCOUNT_ID.test(id) ? { text, record: fields, accountId: id } : undefined;
}

/**
 * A record judged by what its fields hold: a field is kept if its category was allowed for the account, or if the
 * schema passes it through, and the account field always. Nothing removed: the record as it came, byte for byte.
 * Something removed: dropped (mode drop), or the rest re-serialised canonically (mode redact). A record left with no
 * field of any category (an account id and a timestamp) is dropped: there is nothing in it to use.
 */
function shape(line: ParsedLine, plan: FilterPlan, verdict: Verdict): Outcome {
  const schema = plan.schema!;
  const allowed = new Set<string>();
  for (const r of verdict.results) if (r.allow) allowed.add(r.category);
  const fields = Object.keys(line.record);
  const kept: string[] = [];
  const passed = new Set<string>();
  for (const field of fields) {
    if (field === plan.accountField) kept.push(field);
    else {
      const category = schema.fields.get(field);
      if (category === undefined ? !schema.passThrough.has(field) : !allowed.has(category)) continue;
      kept.push(field);
      if (category !== undefined) passed.add(category);
    }
  }
  const removed = kept.length < fields.length;
  if (!passed.size || (removed && plan.mode === 'drop')) return DROPPED;
  if (!removed) return { out: `${line.text}\n`, passed: [...passed] };
  const out = redacted(line.text, kept);
  return out === undefined ? DROPPED : { out: `${out}\n`, passed: [...passed], redacted: true };
}

/**
 * The kept fields, as canonical JSON (keys sorted at every level, no whitespace), numbers exactly as they were
 * written. Undefined (the record is dropped) when it cannot be written: nested too deep for the stack.
 */
function redacted(text: string, kept: readonly string[]): string | undefined {
  try {
    const all = JSON.parse(text, keepNumbers) as Record<string, Json>;
    return canonicalJson(Object.fromEntries(kept.map((field) => [field, all[field]])));
  } catch {
    return undefined;
  }
}

/** A JSON.parse reviver (with Node's source text access): each number as its source text. */
const keepNumbers = (_key: string, value: unknown, context?: { source?: string }): unknown =>
  typeof value === 'number' && context?.source !== undefined ? rawJson.rawJSON(context.source) : value;
