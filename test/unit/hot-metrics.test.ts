import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../src/platform/hot-metrics';
import { prng } from '../../src/platform/random';

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];
const ROUTES = ['/v1/decisions', '/v1/decisions/batch', '/readyz'];

describe('the hot-path metrics are exposed exactly as prom-client exposes the same updates', () => {
  it('a histogram: by labels, through children, values on bucket bounds and beyond the last', async () => {
    const [ours, theirs] = [new Registry(), new Registry()];
    const options = {
      name: 'x_seconds',
      help: 'Test',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: BUCKETS,
    };
    const hot = new HotHistogram({ ...options, registers: [ours] });
    const reference = new Histogram({ ...options, registers: [theirs] });
    const rand = prng(7);
    const child = hot.labels('GET', '/readyz', '200');
    for (let i = 0; i < 5000; i++) {
      const value = i % 50 === 0 ? BUCKETS[i % BUCKETS.length]! : rand() * (i % 7 === 0 ? 10 : 0.2);
      const labels = { method: 'POST', route: ROUTES[i % 2]!, status: i % 3 ? '200' : '422' };
      if (i % 4 === 0) {
        child.observe(value);
        reference.observe({ method: 'GET', route: '/readyz', status: '200' }, value);
      } else {
        hot.observe(labels, value);
        reference.observe(labels, value);
      }
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());

    // After a reset, a child made before it still counts.
    ours.resetMetrics();
    theirs.resetMetrics();
    child.observe(0.002);
    reference.observe({ method: 'GET', route: '/readyz', status: '200' }, 0.002);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('a counter: increments added up until the scrape, then handed over', async () => {
    const [ours, theirs] = [new Registry(), new Registry()];
    const options = { name: 'y_total', help: 'Test', labelNames: ['purpose', 'outcome'] as const };
    const hot = new HotCounter({ ...options, registers: [ours] });
    const reference = new Counter({ ...options, registers: [theirs] });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 100; i++) {
        const labels = { purpose: i % 2 ? 'ad_targeting' : 'data_sale', outcome: i % 5 ? 'allow' : 'deny' };
        hot.inc(labels, i % 3);
        reference.inc(labels, i % 3);
      }
      // Each scrape sees every increment so far, and none twice.
      expect(await ours.metrics()).toBe(await theirs.metrics());
    }
  });

  it('refuses what prom-client refuses: a missing label, a value that is not a number', () => {
    const registry = new Registry();
    const h = new HotHistogram({
      name: 'z',
      help: 'Test',
      labelNames: ['a'] as const,
      buckets: [1],
      registers: [registry],
    });
    expect(() => h.observe({} as { a: string }, 1)).toThrow(/labels a are required/);
    expect(() => h.labels('x').observe(Number.NaN)).toThrow(/not a finite number/);
    const c = new HotCounter({ name: 'w_total', help: 'Test', labelNames: ['a'] as const, registers: [registry] });
    expect(() => c.inc({} as { a: string })).toThrow(/label a is required/);
    expect(() => c.inc({ a: 'x' }, -1)).toThrow(/not a count/);
  });
});
