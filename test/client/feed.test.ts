import { setTimeout as sleep } from 'node:timers/promises';
import {
  AllowCache,
  type ConsentChange,
  createClient,
  OptgateUnavailableError,
  type TokenSource,
} from 'optgate/client';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { FlakyFront } from '../support/flaky-front';
import { startTestService, type TestService } from '../support/harness';

/** optgate/client's change feed and local allow cache against the real service. */

let svc: TestService;
let admin: string;
let getToken: TokenSource;
const purpose = 'ad_targeting';
const categories = ['web_browsing_history'];
const grant = { purpose, category: 'web_browsing_history', choice: 'grant' as const };
const revoke = { ...grant, choice: 'revoke' as const };

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
  const token = await svc.token('decisions', [purpose]);
  getToken = async () => token;
});
afterAll(() => svc.stop());

/** Waits for a condition, checking every 10 ms; the time it took. */
async function within(ms: number, condition: () => boolean): Promise<number> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await sleep(10);
  }
  return Date.now() - start;
}

describe('consentChanges', () => {
  it('iterates the feed in commit order, stops at the end without follow, resumes from a seq', async () => {
    const client = createClient({ baseUrl: svc.url, getToken });
    const ids = [await createAccount(svc, admin), await createAccount(svc, admin), await createAccount(svc, admin)];
    for (const id of ids) await putConsents(svc, admin, id, [grant]);
    const all: ConsentChange[] = [];
    for await (const change of client.consentChanges({ follow: false, limit: 2 })) all.push(change);
    const mine = all.filter((c) => ids.includes(c.accountId));
    expect(mine.map((c) => c.accountId)).toEqual(ids);
    expect(all.map((c) => c.seq)).toEqual([...all.map((c) => c.seq)].sort((a, b) => a - b));

    // Resumed after the first of them: the rest, nothing before.
    const resumed: ConsentChange[] = [];
    for await (const change of client.consentChanges({ after: mine[0]!.seq, follow: false })) resumed.push(change);
    expect(resumed.map((c) => c.seq)).toEqual(all.filter((c) => c.seq > mine[0]!.seq).map((c) => c.seq));
  });

  it('follows: a change made while it waits arrives at the next poll; aborting ends the iteration', async () => {
    const client = createClient({ baseUrl: svc.url, getToken });
    const id = await createAccount(svc, admin);
    const stop = new AbortController();
    const seen: ConsentChange[] = [];
    const reading = (async () => {
      for await (const change of client.consentChanges({ pollIntervalMs: 50, signal: stop.signal })) seen.push(change);
    })();
    await sleep(100);
    await putConsents(svc, admin, id, [grant]);
    await within(2000, () => seen.some((c) => c.accountId === id));
    stop.abort();
    await reading;
  });
});

describe('the local allow cache', () => {
  const decisionCalls = (calls: string[]) => calls.filter((u) => u.includes('/v1/decisions')).length;
  const counting =
    (calls: string[]): typeof fetch =>
    (url, init) => {
      calls.push(String(url));
      return fetch(url, init);
    };

  it('answers repeated allows locally; a revocation reaches it through the feed within the poll interval', async () => {
    const pollIntervalMs = 200;
    const calls: string[] = [];
    const cache = new AllowCache({ maxFeedSilenceMs: 5000 });
    const client = createClient({ baseUrl: svc.url, getToken, cache, fetch: counting(calls) });
    const [yes, other] = [await createAccount(svc, admin), await createAccount(svc, admin)];
    await putConsents(svc, admin, yes, [grant]);
    await putConsents(svc, admin, other, [grant]);
    const watcher = client.watchFeed({ pollIntervalMs });
    try {
      await within(5000, () => cache.active);
      const first = await client.decide({ accountId: yes, purpose, categories });
      expect(first.allow).toBe(true);
      await client.decideBatch({ accountIds: [yes, other], purpose, categories });
      expect(decisionCalls(calls)).toBe(2);
      // Both now come from the cache: the same decision, no call.
      expect(await client.decide({ accountId: yes, purpose, categories: [...categories, ...categories] })).toBe(first);
      const batch = await client.decideBatch({ accountIds: [other, yes], purpose, categories });
      expect(batch.results.map((r) => [r.accountId, r.allow])).toEqual([
        [other, true],
        [yes, true],
      ]);
      expect(batch.decisionIds).toEqual([]);
      expect(decisionCalls(calls)).toBe(2);

      await putConsents(svc, admin, yes, [revoke]);
      const took = await within(pollIntervalMs + 1000, () => cache.size === 1);
      expect(took).toBeLessThanOrEqual(pollIntervalMs + 1000);
      const after = await client.decide({ accountId: yes, purpose, categories });
      expect(after).toMatchObject({ allow: false, results: [expect.objectContaining({ reason: 'consent_revoked' })] });
      expect(decisionCalls(calls)).toBe(3);
      // The other account's allow was kept; a deny is never cached.
      await client.decideBatch({ accountIds: [other], purpose, categories });
      await client.decide({ accountId: yes, purpose, categories });
      expect(decisionCalls(calls)).toBe(4);
    } finally {
      await watcher.stop();
    }
  });

  it('stops using cached allows once the feed has not been read for maxFeedSilenceMs', async () => {
    const front = await new FlakyFront(svc.url).start();
    const cache = new AllowCache({ maxFeedSilenceMs: 400 });
    const client = createClient({
      baseUrl: front.url,
      getToken,
      cache,
      retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
    });
    const yes = await createAccount(svc, admin);
    await putConsents(svc, admin, yes, [grant]);
    const watcher = client.watchFeed({ pollIntervalMs: 50, onError: () => undefined });
    try {
      await within(5000, () => cache.active);
      expect((await client.decide({ accountId: yes, purpose, categories })).allow).toBe(true);
      // The service goes away (the fake front answers 503 to everything): the feed can no longer be read.
      front.failures = Number.MAX_SAFE_INTEGER;
      expect((await client.decide({ accountId: yes, purpose, categories })).allow).toBe(true);
      await within(2000, () => !cache.active);
      expect(cache.size).toBe(1);
      // The cached allow is not used: the service is asked, and its failure is the answer.
      await expect(client.decide({ accountId: yes, purpose, categories })).rejects.toBeInstanceOf(
        OptgateUnavailableError,
      );
      await expect(client.decideBatch({ accountIds: [yes], purpose, categories })).rejects.toBeInstanceOf(
        OptgateUnavailableError,
      );
      // Back: the watcher catches up from where it was, and the cache is used again.
      front.failures = 0;
      await within(5000, () => cache.active);
      const seen = front.seen.length;
      expect((await client.decide({ accountId: yes, purpose, categories })).allow).toBe(true);
      expect(front.seen.slice(seen).filter((s) => s.path.startsWith('/v1/decisions'))).toEqual([]);
    } finally {
      await watcher.stop();
      await front.close();
    }
  });
});
