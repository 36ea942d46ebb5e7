import { AllowCache, type BatchResult } from 'optgate/client';

/** The local allow cache's rules, on a clock of its own (the service-backed behaviour is in feed.test.ts). */

let now = 1_000_000;
const clock = () => now;
const key = 'k';
const iso = (ms: number) => new Date(ms).toISOString();
const allow = (accountId: string, validUntilMs: number): BatchResult => ({
  accountId,
  allow: true,
  validUntil: iso(validUntilMs),
});

function freshCache(o: { maxAgeMs?: number; maxFeedSilenceMs?: number; maxEntries?: number } = {}) {
  const cache = new AllowCache({ now: clock, maxAgeMs: 60_000, maxFeedSilenceMs: 10_000, ...o });
  cache.feedCaughtUp();
  return cache;
}

function put(cache: AllowCache, item: BatchResult, k = key) {
  const ticket = cache.begin();
  cache.store(ticket, k, item);
  cache.end();
}

it('keeps an allow until validUntil or maxAge, whichever is first; never a deny', () => {
  const cache = freshCache();
  put(cache, allow('A', now + 5000));
  put(cache, allow('B', now + 120_000));
  put(cache, { accountId: 'C', allow: false, denied: [{ category: 'name', reason: 'no_consent' }] });
  expect(cache.size).toBe(2);
  cache.feedCaughtUp();
  now += 4999;
  cache.feedCaughtUp();
  expect(cache.lookup('A', key)?.item.allow).toBe(true);
  now += 1;
  expect(cache.lookup('A', key)).toBeUndefined();
  expect(cache.lookup('C', key)).toBeUndefined();
  now += 54_999;
  cache.feedCaughtUp();
  expect(cache.lookup('B', key)).toBeDefined();
  now += 1;
  expect(cache.lookup('B', key)).toBeUndefined();
});

it('a change for an account drops all of its entries, from the feed, a webhook or a direct call', () => {
  const cache = freshCache();
  for (const account of ['A', 'B', 'C']) {
    put(cache, allow(account, now + 30_000), 'k1');
    put(cache, allow(account, now + 30_000), 'k2');
  }
  cache.applyChange({ accountId: 'A' });
  expect([cache.lookup('A', 'k1'), cache.lookup('A', 'k2')]).toEqual([undefined, undefined]);
  expect(cache.applyWebhook({ type: 'consent.changed', data: { accountId: 'B' } })).toBe('B');
  expect(cache.lookup('B', 'k1')).toBeUndefined();
  cache.invalidate('C');
  expect(cache.size).toBe(0);
  expect(() => cache.applyWebhook({ type: 'consent.changed', data: {} })).toThrow(/accountId/);
});

it('does not store an answer whose account changed while it was being asked for', () => {
  const cache = freshCache();
  const ticket = cache.begin();
  cache.invalidate('A');
  cache.store(ticket, key, allow('A', now + 30_000));
  cache.store(ticket, key, allow('B', now + 30_000));
  cache.end();
  expect(cache.lookup('A', key)).toBeUndefined();
  expect(cache.lookup('B', key)).toBeDefined();
  const late = cache.begin();
  cache.clear();
  cache.store(late, key, allow('B', now + 30_000));
  cache.end();
  expect(cache.size).toBe(0);
});

it('is not used until the feed has been read to its end, nor once it has been silent for maxFeedSilenceMs', () => {
  const cache = new AllowCache({ now: clock, maxFeedSilenceMs: 10_000 });
  put(cache, allow('A', now + 60_000));
  expect(cache.active).toBe(false);
  expect(cache.lookup('A', key)).toBeUndefined();
  cache.feedCaughtUp();
  expect(cache.lookup('A', key)).toBeDefined();
  now += 10_001;
  expect(cache.active).toBe(false);
  expect(cache.lookup('A', key)).toBeUndefined();
  cache.feedCaughtUp();
  expect(cache.lookup('A', key)).toBeDefined();
});

it('holds at most maxEntries, dropping the accounts cached longest ago', () => {
  const cache = freshCache({ maxEntries: 2 });
  for (const account of ['A', 'B', 'C']) put(cache, allow(account, now + 30_000));
  expect(cache.size).toBe(2);
  expect(cache.lookup('A', key)).toBeUndefined();
  expect(cache.lookup('C', key)).toBeDefined();
});
