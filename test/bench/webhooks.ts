import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { json } from './probes';
import { BENCH_PURPOSE } from './seed';

/**
 * Webhook delivery, measured end to end: a receiver in this process (it answers 204 at once), one endpoint registered
 * for grants and revocations, then consent writes through the API.
 *   - latency: `writes` writes one after another (a grant or a revocation each); for each, the time from the write's
 *     answer (the change is committed and acknowledged then) to the delivery's arrival at the receiver;
 *   - throughput: `burst` writes at once (8 at a time, each account its own), and the time from the first write until
 *     the receiver holds every delivery. Deliveries to one endpoint go one after another (change-feed order), so this
 *     is one endpoint's rate.
 */

export interface WebhookResult {
  /** Write answered → delivery received, per write, in ms. */
  readonly latencyMs: number[];
  readonly burst: { readonly count: number; readonly seconds: number; readonly drainSeconds: number };
}

const CATEGORY = 'web_browsing_history';
const ACCOUNTS = 40;
const WAIT_MS = 120_000;

export async function measureWebhooks(o: {
  url: string;
  token: string;
  noticeVersion: string;
  writes: number;
  burst: number;
  log: (line: string) => void;
}): Promise<WebhookResult> {
  const arrived = new Map<string, number>();
  const receiver = createServer(async (req, res) => {
    const body = JSON.parse(await text(req)) as { data?: { eventId?: string } };
    if (body.data?.eventId) arrived.set(body.data.eventId, performance.now());
    res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const port = (receiver.address() as AddressInfo).port;
  const call = async (method: string, path: string, body: unknown) => {
    const r = await fetch(o.url + path, { method, headers: json(o.token), body: JSON.stringify(body) });
    const answer = await r.text();
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${answer.slice(0, 300)}`);
    return JSON.parse(answer);
  };
  try {
    await call('POST', '/v1/webhooks', {
      url: `http://127.0.0.1:${port}/hook`,
      events: ['consent.granted', 'consent.revoked'],
      description: 'bench receiver',
    });
    const accounts = Array.from({ length: ACCOUNTS }, (_, i) => `bench-webhook-${String(i).padStart(2, '0')}`);
    await call('POST', '/v1/accounts', { accounts: accounts.map((accountId) => ({ accountId, status: 'active' })) });
    const granted = new Set<string>();
    let n = 0;
    /** A grant or a revocation, in turn per account; returns the event id and when the write was answered. */
    const write = async (accountId: string) => {
      const grant = !granted.has(accountId);
      if (grant) granted.add(accountId);
      else granted.delete(accountId);
      const r = await call('PUT', `/v1/accounts/${accountId}/consents`, {
        channel: 'call_center',
        actor: { type: 'staff', id: 'bench-agent' },
        verification: 'account_pin',
        reference: `BENCH-WEBHOOK-${n++}`,
        noticeVersion: o.noticeVersion,
        affirmative: true,
        changes: [{ purpose: BENCH_PURPOSE, category: CATEGORY, choice: grant ? 'grant' : 'revoke' }],
      });
      return { eventId: r.events[0].eventId as string, answered: performance.now() };
    };
    const until = async (eventIds: readonly string[]) => {
      const deadline = performance.now() + WAIT_MS;
      while (eventIds.some((id) => !arrived.has(id))) {
        if (performance.now() > deadline) {
          const missing = eventIds.filter((id) => !arrived.has(id)).length;
          throw new Error(`${missing} of ${eventIds.length} deliveries had not arrived after ${WAIT_MS / 1000} s`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };

    o.log(`webhooks: ${o.writes} consent writes one after another, each delivered to a local receiver`);
    const latencyMs: number[] = [];
    for (let i = 0; i < o.writes; i++) {
      const { eventId, answered } = await write(accounts[i % ACCOUNTS]!);
      await until([eventId]);
      latencyMs.push(arrived.get(eventId)! - answered);
    }

    o.log(`webhooks: ${o.burst} consent writes at once (8 at a time), until every delivery has arrived`);
    const started = performance.now();
    const ids: string[] = [];
    let next = 0;
    let lastAnswered = started;
    await Promise.all(
      Array.from({ length: 8 }, async (_, lane) => {
        while (next < o.burst) {
          // Each lane writes to its own accounts, so that writes never wait on one account's lock.
          const i = next++;
          const { eventId, answered } = await write(accounts[(i % 5) * 8 + lane]!);
          ids.push(eventId);
          lastAnswered = Math.max(lastAnswered, answered);
        }
      }),
    );
    await until(ids);
    const done = Math.max(...ids.map((id) => arrived.get(id)!));
    return {
      latencyMs,
      burst: { count: ids.length, seconds: (done - started) / 1000, drainSeconds: (done - lastAnswered) / 1000 },
    };
  } finally {
    await new Promise((resolve) => receiver.close(resolve));
  }
}

async function text(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}
