import { verifyWebhook } from 'optgate/client';
import { call, startTestService, type TestService } from '../support/harness';
import { CLI, cliEnv, run } from '../support/processes';
import { eventually, Receiver } from '../webhooks/receiver';

/**
 * `npx optgate demo --accounts N`, through the built CLI, against a running service: the accounts and their choices go
 * through the API (so they are on the audit log), and what it prints works as printed.
 */

let svc: TestService;
let env: Record<string, string>;

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' });
  env = cliEnv(svc);
});
afterAll(() => svc.stop());

it('seeds accounts and choices through the API; prints a working link, token and curl commands', async () => {
  const seeded = await run(CLI, ['demo', '--accounts', '60', '--url', svc.url, '--seed', '7'], env);
  expect(seeded.stderr).toBe('');
  expect(seeded.code).toBe(0);
  const out = seeded.stdout;
  expect(out).toMatch(/^Seeded 60 accounts \(\d+ closed\) with \d+ consent changes in \d+ ms\.$/m);

  const { rows: accounts } = await svc.sql.query(
    "select status, count(*)::int as n from accounts where account_id like 'DEMO-%' group by status order by status",
  );
  expect(accounts.reduce((n, r) => n + r.n, 0)).toBe(60);
  // A mix: grants, declines, revocations and opt-outs, each act with its receipt, every event on the audit log.
  const { rows: kinds } = await svc.sql.query(
    "select kind, count(*)::int as n from consent_events where account_id like 'DEMO-%' group by kind",
  );
  const byKind = Object.fromEntries(kinds.map((r) => [r.kind, r.n]));
  expect(byKind.granted).toBeGreaterThan(10);
  expect(byKind.declined).toBeGreaterThan(0);
  expect(byKind.opted_out).toBeGreaterThan(0);
  const { rows: unaudited } = await svc.sql.query(
    "select count(*)::int as n from consent_events e where e.account_id like 'DEMO-%' and (e.receipt_id is null " +
      "or not exists (select 1 from audit_records r where r.type = 'consent_event' and r.account_id = e.account_id " +
      "and r.content like '%' || e.event_id || '%'))",
  );
  expect(unaudited[0].n).toBe(0);

  // The printed token and account: the decision the first curl command asks for is an allow.
  const token = /export TOKEN=(\S+)/.exec(out)![1]!;
  const accountId = /Sign in to the portal as (DEMO-\d{6})/.exec(out)![1]!;
  const body = JSON.parse(/-d '(\{"accountId".*?\})'/.exec(out)![1]!);
  const r = await call(svc.url, 'POST', '/v1/decisions', { token, body });
  expect(r.status).toBe(200);
  expect(r.body).toMatchObject({ accountId, allow: true });
  // The sign-in link signs in.
  const link = /^ {2}(http\S+\/login\?token=\S+)$/m.exec(out)![1]!;
  const signIn = await fetch(link, { redirect: 'manual' });
  expect(signIn.status).toBe(303);
  expect(signIn.headers.get('location')).toBe('/choices');

  // Run again, with a webhook receiver: the same accounts, nothing refused, and the receiver gets the changes, signed.
  const receiver = await new Receiver().start();
  try {
    const again = await run(
      CLI,
      ['demo', '--accounts', '60', '--url', svc.url, '--seed', '7', '--webhook-url', receiver.url],
      env,
    );
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    const secret = /export WEBHOOK_SECRET=(\S+)/.exec(again.stdout)![1]!;
    await eventually(() => receiver.received.length > 0, 10_000);
    const first = receiver.received[0]!;
    expect(verifyWebhook(secret, first.body, first.headers)).toMatchObject({
      type: expect.stringMatching(/^(consent|account)\./),
    });
  } finally {
    await receiver.stop();
  }
}, 60_000);

it('says what is wrong: a bad count, or no service at the address', async () => {
  const bad = await run(CLI, ['demo', '--accounts', 'lots'], env);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--accounts: a whole number from 1 to 10,000/);
  const down = await run(CLI, ['demo', '--accounts', '3', '--url', 'http://127.0.0.1:9'], env);
  expect(down.code).toBe(2);
  expect(down.stderr).toMatch(/does not answer .*start optgate first \(npm start\), or pass --url/);
  expect(down.stdout).toBe('');
});
