import { AppError } from './errors';

/**
 * At most `limit` tasks at once; others wait in order, for at most `maxWaitMs`, then fail with
 * 503 and Retry-After. On two cores, ten 10,000-account batches at once only make every one of
 * them late (and trip the database timeouts); queueing them keeps each one fast.
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: { grant: () => void; timer: NodeJS.Timeout }[] = [];

  constructor(
    private readonly limit: number,
    private readonly maxWaitMs: number,
  ) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const entry = {
        grant: () => {
          clearTimeout(entry.timer);
          resolve();
        },
        timer: setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(entry), 1);
          reject(
            new AppError('unavailable', 'Too many batch requests are in progress. Try again shortly.', undefined, {
              'retry-after': '1',
            }),
          );
        }, this.maxWaitMs),
      };
      this.waiting.push(entry);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter; `active` stays the same.
    if (next) next.grant();
    else this.active--;
  }
}
