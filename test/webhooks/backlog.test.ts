import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { eventually, Receiver } from './receiver';

/**
 * A backlog drains in one run of the delivery job: once an endpoint's head is delivered, the next ones follow at once,
 * in order, instead of one per tick. The tick here is long (3 s), so one delivery per tick would take 12 s.
 */

let svc: TestService;
let admin: string;
let receiver: Receiver;

beforeAll(async () => {
  svc = await startTestService({
    RUN_WORKERS: 'true',
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    WEBHOOK_RETRY_SCHEDULE_MS: '100,100,100',
    WEBHOOK_TICK_MS: '3000',
  });
  admin = await adminToken(svc);
  receiver = await new Receiver().start();
});
afterAll(async () => {
  await receiver.stop();
  await svc.stop();
});

it('delivers the events held behind a retried one in the same run, in order', async () => {
  let first = true;
  receiver.answer = () => {
    const status = first ? 500 : 200;
    first = false;
    return status;
  };
  const r = await call(svc.url, 'POST', '/v1/webhooks', {
    token: admin,
    body: { url: receiver.url, events: ['consent.granted'] },
  });
  expect(r.status).toBe(201);
  const accountId = await createAccount(svc, admin);
  // One act, five events: dispatched together.
  const categories = ['name', 'demographics', 'web_browsing_history', 'app_usage_history', 'ip_addresses'];
  const changes = categories.map((category) => ({ purpose: 'ad_targeting', category, choice: 'grant' as const }));
  expect((await putConsents(svc, admin, accountId, changes)).status).toBe(200);

  await eventually(() => receiver.delivered(accountId).length === 5, 20_000, 'five deliveries');
  const ok = receiver.received.filter((x) => x.status === 200);
  expect(ok.at(-1)!.at - ok[0]!.at).toBeLessThan(1500);
  const seqs = receiver.delivered(accountId).map((b) => b.seq!);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  expect(receiver.received[0]!.status).toBe(500);
  expect(JSON.parse(receiver.received[0]!.body).seq).toBe(seqs[0]);
});
