import { Semaphore } from '../../src/platform/concurrency';
import { AppError } from '../../src/platform/errors';

describe('Semaphore', () => {
  it('runs at most `limit` tasks at once, in arrival order', async () => {
    const s = new Semaphore(2, 5000);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        s.run(async () => {
          running++;
          peak = Math.max(peak, running);
          order.push(i);
          await new Promise((r) => setTimeout(r, 20));
          running--;
        }),
      ),
    );
    expect(peak).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('gives up on a waiter after maxWaitMs with a 503, and frees its place', async () => {
    const s = new Semaphore(1, 50);
    let release!: () => void;
    const first = s.run(() => new Promise<void>((r) => (release = r)));
    const second = s.run(async () => 'late');
    await expect(second).rejects.toMatchObject({ status: 503, headers: { 'retry-after': '1' } });
    await expect(second).rejects.toBeInstanceOf(AppError);
    release();
    await first;
    await expect(s.run(async () => 'ok')).resolves.toBe('ok');
  });

  it('releases its place when a task fails', async () => {
    const s = new Semaphore(1, 1000);
    await expect(s.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(s.run(async () => 'ok')).resolves.toBe('ok');
  });
});
