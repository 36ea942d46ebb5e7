import { Webhook } from 'standardwebhooks';
import type { RouteSpec } from '../../src/platform/http/route';
import { webhookRoutes } from '../../src/webhooks';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { eventually, Receiver } from './receiver';

/**
 * Webhooks against a real receiver and real workers: signatures verify with the standardwebhooks library, failures are
 * retried (fast schedule), each endpoint gets its events in feed order, a delivery whose retries are used up is dead
 * and can be replayed.
 */

let svc: TestService;
let admin: string;
const receivers: Receiver[] = [];

beforeAll(async () => {
  svc = await startTestService({
    RUN_WORKERS: 'true',
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    WEBHOOK_RETRY_SCHEDULE_MS: '100,150,200',
    WEBHOOK_TICK_MS: '100',
    WEBHOOK_TIMEOUT_MS: '2000',
    WEBHOOK_EXPIRING_DAYS: '7',
    WEBHOOK_EXPIRING_SCAN_MS: '200',
  });
  admin = await adminToken(svc);
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.stop()));
  await svc.stop();
});

/** The answer matches the schema the route documents for its status (what /openapi.json says). */
function documented(spec: RouteSpec, r: { status: number; body: unknown }) {
  const schema = spec.responses[r.status]?.schema;
  if (!schema) throw new Error(`${spec.operationId} documents no JSON answer for ${r.status}`);
  const parsed = schema.safeParse(r.body);
  if (!parsed.success) throw new Error(`${spec.operationId} ${r.status}: ${JSON.stringify(parsed.error.issues)}`);
}

const ALL_EVENTS = ['consent.granted', 'consent.revoked', 'consent.expired', 'consent.lapsed', 'account.closed'];

async function register(receiver: Receiver, events = ALL_EVENTS) {
  const r = await call(svc.url, 'POST', '/v1/webhooks', {
    token: admin,
    body: { url: receiver.url, events, description: 'test receiver' },
  });
  expect(r.status).toBe(201);
  documented(webhookRoutes.create, r);
  return r.body as { id: string; secret: string };
}

async function newReceiver() {
  const r = await new Receiver().start();
  receivers.push(r);
  return r;
}

const grant = (accountId: string, category = 'name') =>
  putConsents(svc, admin, accountId, [{ purpose: 'ad_targeting', category, choice: 'grant' }]);
const revoke = (accountId: string, category = 'name') =>
  putConsents(svc, admin, accountId, [{ purpose: 'ad_targeting', category, choice: 'revoke' }]);

const deliveries = async (id: string, query = '') =>
  (await call(svc.url, 'GET', `/v1/webhooks/${id}/deliveries${query}`, { token: admin })).body.deliveries as {
    id: string;
    event: string;
    seq: number | null;
    status: string;
    attempts: number;
    lastStatus: number | null;
    lastError: string | null;
  }[];

afterEach(async () => {
  // Each test's endpoint stops receiving, so that the next test's events do not wait behind it.
  const list = await call(svc.url, 'GET', '/v1/webhooks', { token: admin });
  for (const w of list.body.webhooks) await call(svc.url, 'DELETE', `/v1/webhooks/${w.id}`, { token: admin });
});

it('delivers consent events signed the Standard Webhooks way, verified by Webhook.verify', async () => {
  const receiver = await newReceiver();
  const { id, secret } = await register(receiver);
  expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  const accountId = await createAccount(svc, admin);
  expect((await grant(accountId)).status).toBe(200);
  expect((await revoke(accountId)).status).toBe(200);

  await eventually(() => receiver.delivered(accountId).length >= 2, 15_000, 'two deliveries');
  const got = receiver.received.filter((r) => JSON.parse(r.body).data.accountId === accountId);
  const verifier = new Webhook(secret);
  for (const r of got) {
    const verified = verifier.verify(r.body, r.headers) as { id: string };
    expect(verified.id).toBe(r.headers['webhook-id']);
    expect(r.headers['webhook-signature']).toMatch(/^v1,/);
  }
  // Another secret does not verify it.
  const other = new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`);
  expect(() => other.verify(got[0]!.body, got[0]!.headers)).toThrow();
  // A body changed in transit does not either.
  expect(() => verifier.verify(got[0]!.body.replace('ad_targeting', 'ad_targetinG'), got[0]!.headers)).toThrow();

  const [granted, revoked] = receiver.delivered(accountId);
  expect(granted).toMatchObject({
    type: 'consent.granted',
    data: { accountId, purpose: 'ad_targeting', category: 'name', kind: 'granted' },
  });
  expect(revoked).toMatchObject({ type: 'consent.revoked', data: { accountId, kind: 'revoked' } });
  expect(revoked!.seq!).toBeGreaterThan(granted!.seq!);
  // Nothing beyond what a pipeline needs: no evidence, no actor.
  expect(Object.keys(granted!.data).sort()).toEqual([
    'accountId',
    'category',
    'eventId',
    'expiresAt',
    'kind',
    'occurredAt',
    'purpose',
  ]);

  const listed = await deliveries(id);
  expect(listed.filter((d) => d.status === 'delivered').map((d) => d.id)).toEqual(
    expect.arrayContaining([granted!.id, revoked!.id]),
  );
});

it('retries a receiver that answers 500, and one that is down, until it takes the delivery', async () => {
  const receiver = await newReceiver();
  let failures = 2;
  receiver.answer = () => (failures-- > 0 ? 500 : 204);
  const { id } = await register(receiver);
  const accountId = await createAccount(svc, admin);
  await grant(accountId);
  await eventually(() => receiver.delivered(accountId).length === 1, 15_000, 'delivery after two 500s');
  const first = (await deliveries(id)).find((d) => d.event === 'consent.granted')!;
  expect(first).toMatchObject({ status: 'delivered', attempts: 3, lastStatus: 204 });

  // Down: connections refused; the delivery stays pending and is retried.
  await receiver.stop();
  await revoke(accountId);
  await eventually(
    async () => (await deliveries(id, '?status=pending')).some((d) => d.attempts >= 1 && d.lastError),
    15_000,
    'a failed attempt while down',
  );
  const pending = (await deliveries(id, '?status=pending'))[0]!;
  expect(pending.lastStatus).toBeNull();
  // A pending delivery is being attempted already: replaying it is a conflict.
  const replay = await call(svc.url, 'POST', `/v1/webhooks/${id}/deliveries/${pending.id}/replay`, { token: admin });
  expect(replay.status).toBe(409);
  await receiver.start();
  await eventually(() => receiver.delivered(accountId).length === 2, 15_000, 'delivery once back');
  expect(receiver.delivered(accountId).map((b) => b.type)).toEqual(['consent.granted', 'consent.revoked']);
});

it("keeps an endpoint's events in feed order, even while the first one is being retried", async () => {
  const receiver = await newReceiver();
  let failures = 2;
  receiver.answer = () => (failures-- > 0 ? 503 : 200);
  await register(receiver);
  const accountId = await createAccount(svc, admin);
  for (const category of ['name', 'demographics', 'web_browsing_history']) {
    expect((await grant(accountId, category)).status).toBe(200);
  }
  expect((await revoke(accountId, 'demographics')).status).toBe(200);
  await eventually(() => receiver.delivered(accountId).length === 4, 20_000, 'four deliveries');
  const seqs = receiver.delivered(accountId).map((b) => b.seq!);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  // Every request, failed or not, came in order: nothing after the first was tried before the first got through.
  const attemptSeqs = receiver.received
    .map((r) => JSON.parse(r.body))
    .filter((b) => b.data.accountId === accountId)
    .map((b) => b.seq as number);
  expect(attemptSeqs).toEqual([...attemptSeqs].sort((a, b) => a - b));
  expect(attemptSeqs.filter((s) => s === seqs[0])).toHaveLength(3);
});

it('marks a delivery dead once its retries are used up, goes on with the next, and replays it on request', async () => {
  const receiver = await newReceiver();
  let refusing = true;
  receiver.answer = (body) => (refusing && JSON.parse(body).type === 'consent.granted' ? 500 : 200);
  const { id } = await register(receiver);
  const accountId = await createAccount(svc, admin);
  await grant(accountId);
  await revoke(accountId);

  const dead = await eventually(
    async () => (await deliveries(id, '?status=dead')).find((d) => d.event === 'consent.granted'),
    20_000,
    'a dead delivery',
  );
  // The first attempt and the three retries of the schedule.
  expect(dead).toMatchObject({ attempts: 4, lastStatus: 500, lastError: 'HTTP 500' });
  // The next one was not held back by it.
  await eventually(() => receiver.delivered(accountId).some((b) => b.type === 'consent.revoked'), 15_000, 'next');

  const metrics = await call(svc.url, 'GET', '/metrics');
  expect(metrics.body).toMatch(/optgate_webhook_deliveries_total\{outcome="dead"\} [1-9]/);
  expect(metrics.body).toMatch(/optgate_webhook_deliveries_total\{outcome="failed"\} [1-9]/);
  expect(metrics.body).toMatch(/optgate_webhook_queue_depth \d+/);
  expect(metrics.body).toMatch(/optgate_webhook_oldest_undelivered_seconds [\d.]+/);

  refusing = false;
  const replayed = await call(svc.url, 'POST', `/v1/webhooks/${id}/deliveries/${dead.id}/replay`, { token: admin });
  expect(replayed.status).toBe(202);
  documented(webhookRoutes.replay, replayed);
  documented(webhookRoutes.deliveries, await call(svc.url, 'GET', `/v1/webhooks/${id}/deliveries`, { token: admin }));
  expect(replayed.body).toMatchObject({ id: dead.id, status: 'pending', attempts: 0 });
  await eventually(() => receiver.delivered(accountId).some((b) => b.id === dead.id), 15_000, 'replayed delivery');
  expect((await deliveries(id)).find((d) => d.id === dead.id)).toMatchObject({ status: 'delivered' });
  // The same webhook-id on every attempt, so that a receiver can drop repeats.
  const ids = receiver.received.filter((r) => JSON.parse(r.body).id === dead.id).map((r) => r.headers['webhook-id']);
  expect(new Set(ids)).toEqual(new Set([dead.id]));
  // An unknown delivery is 404.
  const unknown = `/v1/webhooks/${id}/deliveries/00000000-0000-4000-8000-000000000000/replay`;
  expect((await call(svc.url, 'POST', unknown, { token: admin })).status).toBe(404);
});

it('announces an account closure after the opt-ins it lapsed, and sends a test event on request', async () => {
  const receiver = await newReceiver();
  const { id } = await register(receiver, ['consent.lapsed', 'account.closed']);
  const accountId = await createAccount(svc, admin);
  await grant(accountId);
  await createAccount(svc, admin, 'closed', accountId);
  await eventually(() => receiver.delivered(accountId).length === 2, 15_000, 'lapse and closure');
  expect(receiver.delivered(accountId).map((b) => b.type)).toEqual(['consent.lapsed', 'account.closed']);

  const test = await call(svc.url, 'POST', `/v1/webhooks/${id}/test`, { token: admin });
  expect(test.status).toBe(202);
  documented(webhookRoutes.test, test);
  await eventually(() => receiver.delivered().some((b) => b.id === test.body.deliveryId), 15_000, 'test event');
  expect(receiver.delivered().find((b) => b.id === test.body.deliveryId)).toMatchObject({
    type: 'webhook.test',
    seq: null,
    data: { endpointId: id },
  });
});

it('announces a grant coming to its end once, WEBHOOK_EXPIRING_DAYS before, and a renewal again', async () => {
  const receiver = await newReceiver();
  await register(receiver, ['consent.expiring']);
  const accountId = await createAccount(svc, admin);
  const inDays = (d: number) => new Date(Date.now() + d * 86_400_000).toISOString();
  const soon = [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' as const, expiresAt: inDays(3) }];
  expect((await putConsents(svc, admin, accountId, soon)).status).toBe(200);
  // Ends well after the window: not announced.
  expect((await grant(accountId, 'demographics')).status).toBe(200);
  await eventually(() => receiver.delivered(accountId).length === 1, 15_000, 'expiring');
  const [first] = receiver.delivered(accountId);
  expect(first).toMatchObject({
    type: 'consent.expiring',
    seq: null,
    data: { accountId, purpose: 'ad_targeting', category: 'name', kind: 'expiring', expiresAt: soon[0]!.expiresAt },
  });
  // Several scans later, still once.
  await new Promise((r) => setTimeout(r, 1000));
  expect(receiver.delivered(accountId)).toHaveLength(1);

  // A renewal is a new consent: announced again.
  const renewal = [{ ...soon[0]!, expiresAt: inDays(5) }];
  expect((await putConsents(svc, admin, accountId, renewal)).status).toBe(200);
  await eventually(() => receiver.delivered(accountId).length === 2, 15_000, 'renewal expiring');
  const second = receiver.delivered(accountId)[1]!;
  expect(second.data).toMatchObject({ category: 'name', expiresAt: renewal[0]!.expiresAt });
  expect(second.data.eventId).not.toBe(first!.data.eventId);
});

it('lets a client see and manage only its own endpoints', async () => {
  const receiver = await newReceiver();
  const { id } = await register(receiver);
  const mine = await call(svc.url, 'GET', `/v1/webhooks/${id}`, { token: admin });
  expect(mine.status).toBe(200);
  documented(webhookRoutes.get, mine);
  expect(mine.body).not.toHaveProperty('secret');
  const list = await call(svc.url, 'GET', '/v1/webhooks', { token: admin });
  documented(webhookRoutes.list, list);
  expect(list.body.webhooks.map((w: { id: string }) => w.id)).toEqual([id]);
  const other = await svc.token('webhooks:write', [], { subject: 'another-client' });
  expect((await call(svc.url, 'GET', `/v1/webhooks/${id}`, { token: other })).status).toBe(404);
  expect((await call(svc.url, 'GET', `/v1/webhooks/${id}/deliveries`, { token: other })).status).toBe(404);
  expect((await call(svc.url, 'POST', `/v1/webhooks/${id}/test`, { token: other })).status).toBe(404);
  expect((await call(svc.url, 'DELETE', `/v1/webhooks/${id}`, { token: other })).status).toBe(404);
  expect((await call(svc.url, 'GET', '/v1/webhooks', { token: other })).body).toEqual({ webhooks: [] });
  const reader = await svc.token('decisions');
  expect((await call(svc.url, 'GET', '/v1/webhooks', { token: reader })).status).toBe(403);

  expect((await call(svc.url, 'DELETE', `/v1/webhooks/${id}`, { token: admin })).status).toBe(204);
  expect((await call(svc.url, 'GET', `/v1/webhooks/${id}`, { token: admin })).status).toBe(404);
  // Registering and deleting a receiver are on the audit log (who, which receiver, where to, for which events); the
  // other client's refused delete is not.
  const { rows } = await svc.sql.query(
    "select content from audit_records where type = 'staff_action' and content like '%' || $1 || '%' order by seq",
    [id],
  );
  const { sub } = JSON.parse(Buffer.from(admin.split('.')[1]!, 'base64url').toString());
  expect(rows.map((r) => JSON.parse(r.content).data)).toEqual([
    { action: 'webhook_registered', actor: sub, webhookId: id, url: receiver.url, events: expect.any(Array) },
    { action: 'webhook_deleted', actor: sub, webhookId: id },
  ]);
});
