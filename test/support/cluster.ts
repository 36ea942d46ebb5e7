import type { StartOptions } from '../../src/server';
import { startTestService, type TestService } from './harness';

/** Several instances of optgate in this process, on one database and one Redis prefix: a scaled-out deployment. */
export async function startCluster(
  n: number,
  env: Record<string, string> = {},
  options: StartOptions = {},
): Promise<{ instances: TestService[]; stop(): Promise<void> }> {
  const first = await startTestService(env, options);
  const shared = { ...env, DATABASE_URL: first.databaseUrl, REDIS_PREFIX: first.config.redis.prefix };
  const others: TestService[] = [];
  try {
    for (let i = 1; i < n; i++) others.push(await startTestService(shared, options));
  } catch (err) {
    await first.stop();
    throw err;
  }
  return {
    instances: [first, ...others],
    async stop() {
      for (const o of others) {
        await o.close();
        await o.sql.end();
      }
      await first.stop();
    },
  };
}

/** Waits until every instance answers decisions from its cache (its lease renewed, caught up). */
export async function untilCoherent(instances: readonly { url: string }[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const svc of instances) {
    for (;;) {
      const metrics = await (await fetch(`${svc.url}/metrics`)).text();
      if (/^optgate_cache_coherent 1$/m.test(metrics)) break;
      if (Date.now() > deadline) throw new Error(`${svc.url}: cache not coherent`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A counter of /metrics, summed over its label sets matching `labels` (a substring). */
export async function metricValue(svc: { url: string }, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${svc.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const [series, value] = line.split(' ');
    if (series && (series === name || series.startsWith(`${name}{`)) && series.includes(labels)) sum += Number(value);
  }
  return sum;
}
