import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Non-discrimination evidence: accounts carry a plan and a monthly price; every change is recorded
 * and audited; GET /v1/compliance/non-discrimination lists each change that followed a consent
 * choice of the same account within 30 days, with both events.
 */

let svc: TestService;
let admin: string;
const DAY = 86_400_000;
// In the past, so that the tokens (issued at the real time) are valid at every time the tests set.
const T0 = Date.now() - 80 * DAY;
let now = T0;

beforeAll(async () => {
  svc = await startTestService({}, { clock: () => new Date(now) });
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

const upsert = (accounts: object[]) => call(svc.url, 'POST', '/v1/accounts', { token: admin, body: { accounts } });
const report = (query: string, token = admin) =>
  call(svc.url, 'GET', `/v1/compliance/non-discrimination?${query}`, { token });
const iso = (t: number) => new Date(t).toISOString();

it('lists a change 10 days after a choice with both events; not 40 days after, nor without a choice', async () => {
  now = T0 - 3_600_000;
  const [a, b, c] = [await createAccount(svc, admin), await createAccount(svc, admin), await createAccount(svc, admin)];
  expect(
    (
      await upsert([
        { accountId: a, status: 'active', plan: 'basic', monthlyPrice: 50 },
        { accountId: b, status: 'active', plan: 'basic', monthlyPrice: 50 },
        { accountId: c, status: 'active', plan: 'basic', monthlyPrice: 50 },
      ])
    ).status,
  ).toBe(200);
  now = T0;
  const choice = await putConsents(svc, admin, a, [{ purpose: 'ad_targeting', category: 'name', choice: 'revoke' }], {
    affirmative: false,
  });
  expect(choice.status).toBe(200);
  await putConsents(svc, admin, b, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);

  now = T0 + 10 * DAY;
  expect((await upsert([{ accountId: a, status: 'active', plan: 'basic', monthlyPrice: 59.99 }])).status).toBe(200);
  expect((await upsert([{ accountId: c, status: 'active', plan: 'plus', monthlyPrice: 50 }])).status).toBe(200);
  now = T0 + 40 * DAY;
  expect((await upsert([{ accountId: b, status: 'active', plan: 'premium', monthlyPrice: 80 }])).status).toBe(200);

  const r = await report(`from=${iso(T0 - DAY)}&to=${iso(T0 + 60 * DAY)}`);
  expect(r.status).toBe(200);
  expect(r.body).toEqual({
    windowDays: 30,
    items: [
      {
        accountId: a,
        planChange: {
          changeId: expect.any(String),
          changedAt: iso(T0 + 10 * DAY),
          plan: 'basic',
          monthlyPrice: '59.99',
          previousPlan: 'basic',
          previousMonthlyPrice: '50.00',
        },
        consentChoices: [
          {
            eventId: choice.body.events[0].eventId,
            kind: 'declined',
            purpose: 'ad_targeting',
            category: 'name',
            channel: 'call_center',
            occurredAt: iso(T0),
            daysBefore: 10,
          },
        ],
      },
    ],
    nextCursor: null,
  });

  // Every change is its own audit record, with the plan and the price.
  const audit = await call(svc.url, 'GET', `/v1/audit/events?accountId=${a}&type=staff_action`, { token: admin });
  expect(audit.body.events.map((e: { data: object }) => e.data)).toEqual([
    expect.objectContaining({ change: 'opened' }),
    expect.objectContaining({ change: 'updated', plan: 'basic', monthlyPrice: '50.00' }),
    expect.objectContaining({ change: 'updated', plan: 'basic', monthlyPrice: '59.99' }),
  ]);
  const { rows } = await svc.sql.query('select count(*)::int as n from account_plan_changes where account_id = $1', [
    a,
  ]);
  // The first import gave the account its plan (from none), the second changed the price.
  expect(rows[0].n).toBe(2);

  // Paged: one change of plan or price examined per page.
  const first = await report(`from=${iso(T0 - DAY)}&to=${iso(T0 + 60 * DAY)}&limit=1`);
  expect(first.body.nextCursor).toEqual(expect.any(String));
  const seen = [...first.body.items];
  let cursor = first.body.nextCursor;
  while (cursor) {
    const next = await report(`from=${iso(T0 - DAY)}&to=${iso(T0 + 60 * DAY)}&limit=1&cursor=${cursor}`);
    seen.push(...next.body.items);
    cursor = next.body.nextCursor;
  }
  expect(seen.map((x) => x.accountId)).toEqual([a]);
});

it('an unchanged price written differently is no change; a price removed is', async () => {
  const id = await createAccount(svc, admin);
  now = T0 + 70 * DAY;
  await upsert([{ accountId: id, status: 'active', plan: 'basic', monthlyPrice: 50 }]);
  expect((await upsert([{ accountId: id, status: 'active', plan: 'basic', monthlyPrice: 50.0 }])).body.changed).toBe(0);
  expect((await upsert([{ accountId: id, status: 'active', plan: 'basic' }])).body.changed).toBe(1);
  const { rows } = await svc.sql.query(
    'select monthly_price, previous_monthly_price from account_plan_changes where account_id = $1 order by id',
    [id],
  );
  expect(rows.at(-1)).toEqual({ monthly_price: null, previous_monthly_price: '50.00' });
});

it('refuses bad input with problems naming the field, and needs audit:read', async () => {
  const id = await createAccount(svc, admin);
  for (const [monthlyPrice, message] of [
    [9.999, /two decimals/],
    [-1, />=0/],
    ['12', /number/],
  ] as const) {
    const r = await upsert([{ accountId: id, status: 'active', monthlyPrice }]);
    expect(r.status).toBe(422);
    expect(r.body.errors[0]).toMatchObject({
      path: 'accounts.0.monthlyPrice',
      message: expect.stringMatching(message),
    });
  }
  expect((await upsert([{ accountId: id, status: 'active', plan: '' }])).status).toBe(422);
  expect((await report('from=2026-01-01T00:00:00Z')).status).toBe(422);
  const backwards = await report('from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z');
  expect(backwards.status).toBe(422);
  expect(backwards.body.errors).toEqual([{ path: 'to', message: 'must be after from' }]);
  expect((await report('from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&cursor=nope')).status).toBe(422);
  const pipeline = await svc.token('decisions');
  expect((await report('from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z', pipeline)).status).toBe(403);
  // The table is append-only even for the service's own role.
  await expect(svc.sql.query('delete from account_plan_changes')).rejects.toThrow(/append-only|permission denied/);
});
