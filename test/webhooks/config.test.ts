import { ConfigError, loadConfig } from '../../src/platform/config';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('webhook configuration', () => {
  it('retries for more than a day by default, and allows private receivers only in development', () => {
    const dev = loadConfig({});
    const total = dev.webhooks.retryScheduleMs.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(24 * 3_600_000);
    expect(dev.webhooks).toMatchObject({ allowPrivate: true, allowList: [], timeoutMs: 10_000, expiringDays: 7 });
    expect(loadConfig({ NODE_ENV: 'test' }).webhooks.allowPrivate).toBe(false);
  });

  it('reads the allow list and a schedule of milliseconds', () => {
    const c = loadConfig({
      WEBHOOK_ALLOWED_HOSTS: 'hooks.internal,10.0.0.0/8,::1',
      WEBHOOK_RETRY_SCHEDULE_MS: '10,20',
    });
    expect(c.webhooks.allowList).toEqual(['hooks.internal', '10.0.0.0/8', '::1']);
    expect(c.webhooks.retryScheduleMs).toEqual([10, 20]);
  });

  it('names a bad value', () => {
    expect(problemsOf({ WEBHOOK_RETRY_SCHEDULE_MS: '5s,30s' })).toEqual([
      expect.stringContaining('WEBHOOK_RETRY_SCHEDULE_MS'),
    ]);
    expect(problemsOf({ WEBHOOK_ALLOWED_HOSTS: 'a b' })).toEqual([expect.stringContaining('WEBHOOK_ALLOWED_HOSTS')]);
    for (const entry of ['10.0.0.0/33', '::1/129', 'host/8', '10.0.0.300']) {
      expect(problemsOf({ WEBHOOK_ALLOWED_HOSTS: entry })).toEqual([
        expect.stringContaining(`WEBHOOK_ALLOWED_HOSTS: ${entry}`),
      ]);
    }
    expect(problemsOf({ WEBHOOK_EXPIRING_DAYS: '0' })).toEqual([expect.stringContaining('WEBHOOK_EXPIRING_DAYS')]);
  });
});
