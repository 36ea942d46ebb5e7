import type { Readable } from 'node:stream';
import { AppError } from '../platform/errors';
import { ACCOUNT_ID } from '../platform/vocabulary';
import type { Verdict } from './engine';

export const MAX_LINE_BYTES = 1 << 20;
const MAX_CHUNK = 1000;

export interface FilterCounts {
  received: number;
  allowed: number;
  /** Lines that are not a JSON object with a valid account id in the account field: never passed on. */
  invalid: number;
}

/**
 * Streams NDJSON records through the decision engine: reads what has arrived, judges it in
 * chunks (each chunk audited before its verdicts come back), writes only the allowed records,
 * byte for byte, and goes on. Memory holds one chunk, whatever the size of the stream.
 */
export async function filterRecords(
  input: Readable,
  accountField: string,
  judge: (accountIds: readonly string[]) => Promise<Verdict[]>,
  write: (line: string) => Promise<void>,
): Promise<FilterCounts> {
  const counts: FilterCounts = { received: 0, allowed: 0, invalid: 0 };
  const pending: string[] = [];
  let rest = '';

  const judgeLines = async (lines: string[]) => {
    const records: { line: string; accountId: string }[] = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      counts.received++;
      const accountId = accountOf(line, accountField);
      if (accountId === undefined) counts.invalid++;
      else records.push({ line, accountId });
    }
    if (!records.length) return;
    const verdicts = await judge(records.map((r) => r.accountId));
    for (let i = 0; i < records.length; i++) {
      if (verdicts[i]?.allow !== true) continue;
      counts.allowed++;
      await write(`${records[i]!.line}\n`);
    }
  };

  // The request is not destroyed when judging stops early (a 413, a 503): the error handler drains it, so that
  // the caller, perhaps still sending, gets the answer.
  for await (const chunk of input.iterator({ destroyOnReturn: false })) {
    const text = rest + (chunk as Buffer).toString('utf8');
    const lines = text.split('\n');
    rest = lines.pop()!;
    // Every line, finished or not: one that arrives whole in a large chunk is as long as one that does not.
    for (const line of [...lines, rest]) assertLineLength(line);
    pending.push(...lines.map((l) => l.replace(/\r$/, '')));
    while (pending.length >= MAX_CHUNK) await judgeLines(pending.splice(0, MAX_CHUNK));
    // Whatever has arrived is judged now rather than waiting for a full chunk: a slow producer still gets answers.
    if (pending.length) await judgeLines(pending.splice(0));
  }
  pending.push(rest);
  await judgeLines(pending);
  return counts;
}

/** A record may be at most MAX_LINE_BYTES long (characters are at most 4 bytes: most lines need no count). */
function assertLineLength(line: string): void {
  if (line.length * 4 > MAX_LINE_BYTES && Buffer.byteLength(line) > MAX_LINE_BYTES) {
    throw new AppError('payload-too-large', `A record is longer than ${MAX_LINE_BYTES} bytes.`);
  }
}

function accountOf(line: string, field: string): string | undefined {
  try {
    const record = JSON.parse(line) as unknown;
    if (!record || typeof record !== 'object' || Array.isArray(record)) return undefined;
    const id = (record as Record<string, unknown>)[field];
    return typeof id === 'string' && ACCOUNT_ID.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}
