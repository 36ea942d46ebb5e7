import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from './logger';

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
}

export type QueueName = keyof QueuePayloads;
export type JobHandler<N extends QueueName> = (job: Job<QueuePayloads[N]>) => Promise<unknown>;

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
        defaultJobOptions: { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: 1000, removeOnFail: 5000 },
      });
      this.queues.set(name, q);
    }
    return q as Queue<QueuePayloads[N]>;
  }

  /** Runs `handler` for jobs of `name`. Failures are logged like HTTP errors: ids and messages, no data. */
  work<N extends QueueName>(name: N, handler: JobHandler<N>, concurrency = 1): Worker {
    const worker = new Worker(name, handler as (job: Job) => Promise<unknown>, {
      connection: this.connection,
      prefix: this.prefix,
      concurrency,
    });
    worker.on('failed', (job, err) =>
      this.logger.error({ queue: name, jobId: job?.id, attempt: job?.attemptsMade, err: { message: err.message, name: err.name } }, 'job failed'),
    );
    worker.on('error', (err) => this.logger.warn({ queue: name, err: { message: err.message } }, 'worker error'));
    this.workers.push(worker);
    return worker;
  }

  /** Jobs per queue and state, for /metrics. Only queues this instance has opened. */
  async depths(timeoutMs = 1000): Promise<{ queue: QueueName; state: string; count: number }[]> {
    // The queue connection waits for Redis forever (as BullMQ wants): a scrape must not.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('queue depths: timeout')), timeoutMs)));
    const counts = Promise.all(
      [...this.queues].map(async ([name, q]) =>
        Object.entries(await q.getJobCounts('waiting', 'active', 'delayed', 'failed')).map(([state, count]) => ({ queue: name, state, count })),
      ),
    );
    try {
      return (await Promise.race([counts, timeout])).flat();
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
