import { AllowCache, createClient, verifyWebhook } from 'optgate/client';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { Receiver } from '../webhooks/receiver';

/**
 * A revocation reaches a pipeline's local allow cache through a webhook within a second: the pipeline verifies each
 * delivery with the client's verifyWebhook and hands it to its cache. Its feed watcher polls only once a minute here,
 * so the webhook is what drops the allow. Real service, real workers, a real receiver.
 */

let svc: TestService;
let admin: string;
const receiver = new Receiver();

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' });
  admin = await adminToken(svc);
  await receiver.start();
});
afterAll(async () => {
  await receiver.stop();
  await svc.stop();
});

it('a revocation reaches the local cache through a webhook within 1 s', async () => {
  const pipeline = await svc.token('decisions webhooks:write', [...svc.config.catalog.purposes.keys()], {
    subject: 'webhook-pipeline',
  });
  const cache = new AllowCache({ maxAgeMs: 600_000, maxFeedSilenceMs: 600_000 });
  const client = createClient({ baseUrl: svc.url, getToken: async () => pipeline, cache });
  const watcher = client.watchFeed({ pollIntervalMs: 60_000 });
  const registered = await call(svc.url, 'POST', '/v1/webhooks', {
    token: pipeline,
    body: { url: receiver.url, events: ['consent.granted', 'consent.revoked'] },
  });
  expect(registered.status).toBe(201);
  const { secret } = registered.body as { secret: string };
  // The pipeline's receiver: verify, then drop the account's allows.
  let applied: { accountId: string; at: number } | undefined;
  receiver.answer = () => 204;
  const seen = receiver.received.length;
  const applyNew = () => {
    for (const r of receiver.received.slice(seen)) {
      const event = verifyWebhook(secret, r.body, r.headers) as { type: string; data: { accountId: string } };
      if (event.type === 'consent.revoked') applied ??= { accountId: cache.applyWebhook(event), at: r.at };
    }
  };
  try {
    const accountId = await createAccount(svc, admin);
    await putConsents(svc, admin, accountId, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
    const question = { accountId, purpose: 'ad_targeting', categories: ['web_browsing_history'] };
    // The feed watcher must have read to the end once before the cache is used.
    for (let i = 0; i < 100 && !cache.active; i++) await new Promise((r) => setTimeout(r, 50));
    expect(cache.active).toBe(true);
    expect((await client.decide(question)).allow).toBe(true);
    expect(cache.size).toBe(1);

    const revoked = await putConsents(svc, admin, accountId, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'revoke' },
    ]);
    const answeredAt = Date.now();
    expect(revoked.status).toBe(200);
    while (!applied && Date.now() - answeredAt < 5_000) {
      applyNew();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(applied?.accountId).toBe(accountId);
    expect(applied!.at - answeredAt).toBeLessThan(1_000);
    expect(cache.size).toBe(0);
    // The next question goes to the service, which denies.
    expect((await client.decide(question)).allow).toBe(false);
  } finally {
    await watcher.stop();
  }
}, 30_000);
