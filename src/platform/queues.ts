import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from './logger';
import { withTimeout } from './timeout';

/**
 * The queue registry: every queue's name and payload type in one place. Payloads carry ids
 * and times, never subscriber data; job ids are deterministic so that work is idempotent.
 */
export interface QueuePayloads {
  /** Appends `expired` events for opt-ins whose term has run out. */
  'consent-expiry': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Signs the audit chain head. */
  'audit-checkpoint': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Writes one audit export: the id only; the filters (which may name an account) stay in PostgreSQL. */
  'audit-export': { readonly exportId: string };
  /** Deletes the files of expired exports. */
  'audit-export-expiry': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Verifies the audit log in the database from where the last intact run stopped, and records the result. */
  'audit-verify': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Creates the coming months' partitions of the audit log; archives and drops the months past the retention. */
  'audit-retention': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Counts the audit log's new records into the console charts' hourly counts (a bounded step per run). */
  'audit-rollup': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Forgets old rows of the account change log (the consent caches' catch-up). */
  'cache-changes-prune': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Reads the change feed from the webhooks' cursor and creates the deliveries it calls for. */
  'webhook-dispatch': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Attempts the due deliveries: each endpoint's oldest pending one. */
  'webhook-deliver': { readonly scheduledBy: 'scheduler' | 'manual' };
  /** Announces grants whose term ends within WEBHOOK_EXPIRING_DAYS (consent.expiring), once per consent. */
  'webhook-expiring': { readonly scheduledBy: 'scheduler' | 'manual' };
}

export type QueueName = keyof QueuePayloads;
export type JobHandler<N extends QueueName> = (job: Job<QueuePayloads[N]>) => Promise<unknown>;

/** What a component asks to be run in the background: a handler, and for periodic work, its interval. */
export interface JobDefinition<N extends QueueName = QueueName> {
  readonly queue: N;
  readonly handler: JobHandler<N>;
  /** Run every `everyMs` (a BullMQ job scheduler `id`: one run per tick, whichever instance takes it). */
  readonly schedule?: { readonly id: string; readonly everyMs: number; readonly data: QueuePayloads[N] };
}

/** Typed where it is written; the list of a component's jobs holds several queues. */
export const job = <N extends QueueName>(d: JobDefinition<N>): JobDefinition => d as unknown as JobDefinition;

export class Queues {
  private readonly queues = new Map<QueueName, Queue>();
  private readonly workers: Worker[] = [];

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {}

  queue<N extends QueueName>(name: N): Queue<QueuePayloads[N]> {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, {
        connection: this.connection,
        prefix: this.prefix,
        defaultJobOptions: {
          attempts: 5,
          backoff: { type: 'exponential', delay: 1000 },
          removeOnComplete: 1000,
          removeOnFail: 5000,
        },
      });
      // Without a listener BullMQ prints every connection error to the console; the connection itself reports once
      // (redis.ts).
      q.on('error', () => undefined);
      this.queues.set(name, q);
    }
    return q as Queue<QueuePayloads[N]>;
  }

  /** Starts a worker for the job and, for periodic work, its scheduler. */
  async start(d: JobDefinition): Promise<void> {
    this.work(d.queue, d.handler);
    if (d.schedule) {
      const { id, everyMs, data } = d.schedule;
      this.intervals.set(d.queue, everyMs);
      await this.queue(d.queue).upsertJobScheduler(id, { every: everyMs }, { name: id, data });
    }
  }

  /** Runs `handler` for jobs of `name`. Failures are logged like HTTP errors: ids and messages, no data. */
  private work<N extends QueueName>(name: N, handler: JobHandler<N>): void {
    const worker = new Worker(name, handler as (job: Job) => Promise<unknown>, {
      connection: this.connection,
      prefix: this.prefix,
    });
    worker.on('completed', () => this.lastCompleted.set(name, Date.now()));
    worker.on('failed', (job, err) =>
      this.logger.error(
        { queue: name, jobId: job?.id, attempt: job?.attemptsMade, err: { message: err.message, name: err.name } },
        'job failed',
      ),
    );
    // A lost connection makes a worker report the same error many times a second: once a minute is enough.
    let lastReported = 0;
    worker.on('error', (err) => {
      if (Date.now() - lastReported < 60_000) return;
      lastReported = Date.now();
      this.logger.warn({ queue: name, err: { message: err.message } }, 'worker error');
    });
    this.workers.push(worker);
  }

  /** Jobs per queue and state, for /metrics. Only queues this instance has opened. */
  async depths(timeoutMs = 1000): Promise<{ queue: QueueName; state: string; count: number }[]> {
    const counts = Promise.all(
      [...this.queues].map(async ([name, q]) =>
        Object.entries(await q.getJobCounts('waiting', 'active', 'delayed', 'failed')).map(([state, count]) => ({
          queue: name,
          state,
          count,
        })),
      ),
    );
    // The queue connection waits for Redis forever (as BullMQ wants): a scrape must not.
    return (await withTimeout(counts, timeoutMs, () => new Error('queue depths: timeout'))).flat();
  }

  /** Resolves once the queue connection is ready: workers are started then, not while Redis is unreachable. */
  ready(): Promise<void> {
    if (this.connection.status === 'ready') return Promise.resolve();
    return new Promise((resolve) => this.connection.once('ready', () => resolve()));
  }

  /**
   * Lets running jobs finish. BullMQ's close (and even disconnect) never resolves while Redis is
   * unreachable: after `timeoutMs` this gives up, and the caller cuts the connections.
   */
  async close(timeoutMs = 5000): Promise<void> {
    this.closed = true;
    const graceful = (async () => {
      await Promise.all(this.workers.map((w) => w.close()));
      await Promise.all([...this.queues.values()].map((q) => q.close()));
    })();
    await withTimeout(graceful, timeoutMs, () => new Error('queues: close timed out')).catch(() => undefined);
  }

  /** True once close() was called: nothing new is started. */
  closed = false;

  /**
   * When a job of each queue last completed on this instance (epoch ms), for /metrics: a periodic job that stops
   * running (a sweep, the signing of tree heads) shows as a time that no longer moves.
   */
  readonly lastCompleted = new Map<QueueName, number>();

  /** The interval of each periodic job this instance runs (ms), for /metrics: alerts compare the times above to it. */
  readonly intervals = new Map<QueueName, number>();
}
