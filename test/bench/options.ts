import { parseArgs } from 'node:util';

/** Command-line options of `npm run bench -- [options]`. */
export interface BenchOptions {
  /** Accounts to seed. */
  readonly accounts: number;
  /** Seconds of measured load per phase. */
  readonly duration: number;
  /** Seconds of unmeasured load before each measured phase. */
  readonly warmup: number;
  /** Concurrent connections for the single-decision and bare-route phases (the pair that is compared). */
  readonly connections: number;
  /**
   * Concurrent connections for the batch phase. Not --connections: 64 callers each asking about
   * 10,000 accounts at once is 640,000 decisions in flight, which measures queueing (p99 near the
   * 10 s mark, calls abandoned at the end of the phase) rather than batch throughput.
   */
  readonly batchConnections: number;
  /** Accounts per batch call (the API maximum is 10,000). */
  readonly batchSize: number;
  /** Seed of the pseudo-random generator: the same seed gives the same accounts, consents and request mix. */
  readonly seed: number;
}

export const USAGE = `usage: npm run bench -- [options]

  --accounts N            accounts to seed (default 100000)
  --duration SECONDS      measured load per phase (default 10)
  --warmup SECONDS        unmeasured load before each phase (default 2)
  --connections C         connections for single decisions and the bare route (default 64)
  --batch-connections C   connections for the batch phase (default 4)
  --batch-size N          accounts per batch call (default 10000, the API maximum)
  --seed N                pseudo-random seed for the data and the request mix (default 1)
`;

export class UsageError extends Error {}

const OPTIONS = {
  accounts: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  connections: { type: 'string' },
  'batch-connections': { type: 'string' },
  'batch-size': { type: 'string' },
  seed: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const values = (() => {
    try {
      return parseArgs({ args: argv, strict: true, options: OPTIONS }).values;
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  })();
  if (values.help) return 'help';
  const connections = intOption('--connections', values.connections, 64, 1, 10_000);
  return {
    accounts: intOption('--accounts', values.accounts, 100_000, 1, 50_000_000),
    duration: intOption('--duration', values.duration, 10, 1, 3600),
    warmup: intOption('--warmup', values.warmup, 2, 0, 600),
    connections,
    batchConnections: intOption('--batch-connections', values['batch-connections'], 4, 1, 10_000),
    batchSize: intOption('--batch-size', values['batch-size'], 10_000, 1, 10_000),
    seed: intOption('--seed', values.seed, 1, 0, 2 ** 31 - 1),
  };
}

/** An integer option from min to max (underscores allowed: 1_000_000), or the fallback when absent. */
export function intOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${name}: expected an integer from ${min} to ${max}, got "${text}"`);
  return n;
}
