import net from 'node:net';
import {
  createClient,
  OptgateProblemError,
  OptgateProtocolError,
  OptgateUnavailableError,
  type TokenSource,
} from 'optgate/client';
import { adminToken, createAccount, putConsents, uniqueId } from '../support/fixtures';
import { FlakyFront } from '../support/flaky-front';
import { startTestService, type TestService } from '../support/harness';

/** optgate/client against the real service: decide, decideBatch, typed errors, tokens, retries. */

let svc: TestService;
let admin: string;
let yes: string;
let no: string;
const purpose = 'ad_targeting';
const categories = ['web_browsing_history'];

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
  yes = await createAccount(svc, admin);
  no = await createAccount(svc, admin);
  await putConsents(svc, admin, yes, [{ purpose, category: 'web_browsing_history', choice: 'grant' }]);
});
afterAll(() => svc.stop());

const tokenFor = (purposes = [purpose]): TokenSource => {
  let token: Promise<string> | undefined;
  return () => (token ??= svc.token('decisions', purposes));
};
const fast = { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 };

it('decide: an allow with validUntil, a deny with its reasons, typed from the service schemas', async () => {
  const client = createClient({ baseUrl: svc.url, getToken: tokenFor() });
  const allowed = await client.decide({ accountId: yes, purpose, categories });
  expect(allowed).toMatchObject({ accountId: yes, allow: true, purpose, validUntil: expect.any(String) });
  expect(allowed.results).toEqual([expect.objectContaining({ category: 'web_browsing_history', allow: true })]);
  const denied = await client.decide({ accountId: no, purpose, categories });
  expect(denied.allow).toBe(false);
  expect(denied.validUntil).toBeUndefined();
  expect(denied.results).toEqual([{ category: 'web_browsing_history', allow: false, reason: 'no_consent' }]);
});

it('decideBatch: more than 10,000 accounts are split into calls of 10,000, answered in input order', async () => {
  const bodies: number[] = [];
  const counting: typeof fetch = (url, init) => {
    bodies.push((JSON.parse(String(init?.body)) as { accountIds: string[] }).accountIds.length);
    return fetch(url, init);
  };
  const client = createClient({ baseUrl: svc.url, getToken: tokenFor(), fetch: counting });
  const ids = Array.from({ length: 10_003 }, (_, i) => `ghost-${i}`);
  ids[0] = yes;
  ids[5000] = no;
  ids[10_001] = yes;
  const answer = await client.decideBatch({ accountIds: ids, purpose, categories });
  expect(bodies.sort((a, b) => a - b)).toEqual([3, 10_000]);
  expect(answer.decisionIds).toHaveLength(2);
  expect(answer.results.map((r) => r.accountId)).toEqual(ids);
  expect(answer.results.flatMap((r, i) => (r.allow ? [i] : []))).toEqual([0, 10_001]);
  expect(answer.results[5000]!.denied).toEqual([{ category: 'web_browsing_history', reason: 'no_consent' }]);
  expect(answer.results[1]!.denied).toEqual([{ category: 'web_browsing_history', reason: 'unknown_account' }]);
}, 60_000);

it('4xx are typed errors carrying the problem document, and are not retried', async () => {
  const client = createClient({ baseUrl: svc.url, getToken: tokenFor(), retry: fast });
  const invalid = await client.decide({ accountId: yes, purpose, categories: ['no_such_category'] }).catch((e) => e);
  expect(invalid).toBeInstanceOf(OptgateProblemError);
  expect(invalid).toMatchObject({ status: 422, problemType: 'validation', requestId: expect.any(String) });
  expect(invalid.errors).toEqual([expect.objectContaining({ path: expect.stringContaining('categories') })]);
  // Not entitled to the purpose.
  const forbidden = createClient({ baseUrl: svc.url, getToken: tokenFor(['fraud_protection']) });
  await expect(forbidden.decide({ accountId: yes, purpose, categories })).rejects.toMatchObject({
    status: 403,
    problemType: 'forbidden',
  });
});

it('a 401 asks the token source once more, with forceRefresh, and retries once', async () => {
  const hints: boolean[] = [];
  const good = await svc.token('decisions', [purpose]);
  const client = createClient({
    baseUrl: svc.url,
    getToken: async ({ forceRefresh }) => {
      hints.push(forceRefresh);
      return forceRefresh ? good : 'not-a-token';
    },
  });
  expect((await client.decide({ accountId: yes, purpose, categories })).allow).toBe(true);
  expect(hints).toEqual([false, true]);
  // A token source that never gives a good token: 401, after exactly one refresh.
  hints.length = 0;
  const stale = createClient({
    baseUrl: svc.url,
    getToken: async ({ forceRefresh }) => {
      hints.push(forceRefresh);
      return 'not-a-token';
    },
  });
  await expect(stale.decide({ accountId: yes, purpose, categories })).rejects.toMatchObject({
    status: 401,
    problemType: 'unauthenticated',
  });
  expect(hints).toEqual([false, true]);
});

describe('retries (a fake front answers the failures; everything else is the real service)', () => {
  let front: FlakyFront;
  beforeEach(async () => {
    front = await new FlakyFront(svc.url).start();
  });
  afterEach(() => front.close());

  it('retries 503, 502 and 504, then answers what the service says', async () => {
    const client = createClient({ baseUrl: front.url, getToken: tokenFor(), retry: fast });
    for (const status of [503, 502, 504]) {
      front.status = status;
      front.failures = 2;
      front.seen.length = 0;
      expect((await client.decide({ accountId: yes, purpose, categories })).allow).toBe(true);
      expect(front.seen).toHaveLength(3);
    }
  });

  it('honours Retry-After', async () => {
    front.failures = 1;
    front.retryAfter = '1';
    const client = createClient({ baseUrl: front.url, getToken: tokenFor(), retry: { ...fast, maxDelayMs: 5000 } });
    await client.decideBatch({ accountIds: [yes], purpose, categories });
    expect(front.seen).toHaveLength(2);
    expect(front.seen[1]!.at - front.seen[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('never turns a failure into an allow: retries run out in an OptgateUnavailableError', async () => {
    front.failures = 100;
    const client = createClient({ baseUrl: front.url, getToken: tokenFor(), retry: fast });
    const err = await client.decide({ accountId: yes, purpose, categories }).catch((e) => e);
    expect(err).toBeInstanceOf(OptgateUnavailableError);
    expect(err.attempts).toBe(4);
    expect(err.cause).toMatchObject({ status: 503, problemType: 'unavailable' });
    expect(front.seen).toHaveLength(4);
    await expect(client.decideBatch({ accountIds: [yes, no], purpose, categories })).rejects.toBeInstanceOf(
      OptgateUnavailableError,
    );
  });
});

it('retries connection errors: refused, reset, timed out', async () => {
  // Nothing listens on a port just closed: refused.
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const refused = createClient({ baseUrl: `http://127.0.0.1:${port}`, getToken: tokenFor(), retry: fast });
  const err = await refused.decide({ accountId: yes, purpose, categories }).catch((e) => e);
  expect(err).toBeInstanceOf(OptgateUnavailableError);
  expect(err.message).toMatch(/ECONNREFUSED/);

  // A server that resets the first connection and hangs on the second, then the real service answers.
  let n = 0;
  const sockets = new Set<net.Socket>();
  const flaky = net.createServer((socket) => {
    sockets.add(socket);
    if (++n === 1) return socket.resetAndDestroy();
    if (n === 2) return; // hangs: the attempt times out
    const upstream = net.connect(Number(new URL(svc.url).port), '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(flaky.address() as net.AddressInfo).port}`;
  try {
    const client = createClient({ baseUrl: url, getToken: tokenFor(), retry: fast, timeoutMs: 500 });
    expect((await client.decide({ accountId: yes, purpose, categories })).allow).toBe(true);
    // fetch may open a connection of its own accord: at least the three that were used.
    expect(n).toBeGreaterThanOrEqual(3);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => flaky.close(resolve));
  }
});

it('an answer that does not match the schema is an error, not a decision', async () => {
  const liar: typeof fetch = async () =>
    new Response(JSON.stringify({ allow: true, accountId: yes }), { headers: { 'content-type': 'application/json' } });
  const client = createClient({ baseUrl: svc.url, getToken: tokenFor(), fetch: liar });
  await expect(client.decide({ accountId: uniqueId(), purpose, categories })).rejects.toBeInstanceOf(
    OptgateProtocolError,
  );
});
