import { type ParseArgsConfig, parseArgs } from 'node:util';

export class UsageError extends Error {}

/** node:util parseArgs, with its errors turned into usage errors (exit code 2). */
export function parseOptions<T extends ParseArgsConfig['options']>(
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** "90s", "15m", "1h", "7d" or a number of seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`not a duration: "${text}" (try 15m, 1h, 7d)`);
  const n = Number(m[1]);
  const seconds = n * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  if (seconds <= 0) throw new UsageError('a duration must be positive');
  return seconds;
}
