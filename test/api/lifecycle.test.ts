import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The account lifecycle (closing ends opt-ins, re-opening does not bring them back, only the
 * exceptions that outlive the relationship still apply) and superseded notices.
 */

let svc: TestService;
let admin: string;
/** The service's clock: real time, unless a test sets it. */
let fixed: number | undefined;

beforeAll(async () => {
  svc = await startTestService({}, { clock: () => new Date(fixed ?? Date.now()) });
  admin = await adminToken(svc);
});
afterEach(() => {
  fixed = undefined;
});
afterAll(() => svc.stop());

const setStatus = (accountId: string, status: 'active' | 'closed') =>
  call(svc.url, 'POST', '/v1/accounts', { token: admin, body: { accounts: [{ accountId, status }] } });
const reasons = (body: { results: { reason: string }[] }) => body.results.map((r) => r.reason);
const states = async (accountId: string) =>
  (await call(svc.url, 'GET', `/v1/accounts/${accountId}/consents`, { token: admin })).body.consents.map(
    (c: { purpose: string; category: string; state: string }) => `${c.purpose}:${c.category}:${c.state}`,
  );

describe('a closed account', () => {
  it('allows only the exceptions that outlive the relationship', async () => {
    const id = await createAccount(svc, admin, 'closed');
    const ask = (purpose: string, categories: string[], extra = {}) =>
      decide(svc, admin, { accountId: id, purpose, categories, ...extra });
    expect((await ask('billing', ['billing_info', 'billing_address'])).body.allow).toBe(true);
    expect((await ask('fraud_protection', ['ip_addresses'])).body.allow).toBe(true);
    const court = await ask('court_order', ['name'], { recipient: 'me-superior-court', reference: 'CV-2026-9' });
    expect(court.body).toMatchObject({ allow: true, results: [{ reason: 'exception' }] });
    for (const [purpose, extra] of [
      ['service_provision', {}],
      ['own_communications_marketing', {}],
      ['ad_targeting', {}],
      ['product_analytics', {}],
      ['data_sale', { recipient: 'acme-ads' }],
    ] as const) {
      const r = await ask(purpose, ['name'], extra);
      expect({ purpose, reasons: reasons(r.body) }).toEqual({ purpose, reasons: ['account_closed'] });
    }
  });

  it('takes no consent change: 409 problem+json', async () => {
    const id = await createAccount(svc, admin, 'closed');
    const r = await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
    expect(r.status).toBe(409);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body.detail).toMatch(/closed/);
    expect(await states(id)).toEqual([]);
  });
});

describe('closing an account ends its opt-ins', () => {
  it('each grant in force lapses at closure, and re-opening does not bring it back', async () => {
    const id = await createAccount(svc, admin);
    const granted = await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
      { purpose: 'data_sale', category: 'name', choice: 'grant', recipients: ['acme-ads'] },
      { purpose: 'ad_targeting', category: 'health', choice: 'revoke' },
      { purpose: 'product_analytics', category: 'other_customer_info', choice: 'opt_out' },
    ]);
    expect(granted.status).toBe(200);
    const web = { accountId: id, purpose: 'ad_targeting', categories: ['web_browsing_history'] };
    expect((await decide(svc, admin, web)).body.allow).toBe(true);

    expect((await setStatus(id, 'closed')).body).toEqual({ upserted: 1, changed: 1 });
    expect(await states(id)).toEqual([
      'ad_targeting:health:declined',
      'ad_targeting:web_browsing_history:lapsed',
      'data_sale:name:lapsed',
      'product_analytics:other_customer_info:opted_out',
    ]);
    expect(reasons((await decide(svc, admin, web)).body)).toEqual(['account_closed']);

    // The feed tells pipelines, and the audit records who closed the account and what lapsed.
    const feed = await call(svc.url, 'GET', '/v1/consent-changes?limit=1000', { token: admin });
    const lapsed = feed.body.changes.filter((c: { accountId: string; kind: string }) => c.accountId === id);
    expect(lapsed.map((c: { kind: string; purpose: string }) => `${c.kind}:${c.purpose}`)).toEqual([
      'granted:ad_targeting',
      'granted:data_sale',
      'declined:ad_targeting',
      'opted_out:product_analytics',
      'lapsed:ad_targeting',
      'lapsed:data_sale',
    ]);
    expect(lapsed.at(-1)).toMatchObject({ channel: 'system', recipients: ['acme-ads'] });
    const audit = await call(svc.url, 'GET', `/v1/audit/events?accountId=${id}&type=staff_action`, { token: admin });
    expect(audit.body.events.map((e: { data: object }) => e.data)).toEqual([
      expect.objectContaining({ action: 'account_changed', change: 'opened', status: 'active' }),
      expect.objectContaining({ action: 'account_changed', change: 'closed', status: 'closed', lapsedConsents: 2 }),
    ]);

    expect((await setStatus(id, 'active')).body).toEqual({ upserted: 1, changed: 1 });
    expect(reasons((await decide(svc, admin, web)).body)).toEqual(['consent_lapsed']);
    const sale = { accountId: id, purpose: 'data_sale', recipient: 'acme-ads', categories: ['name'] };
    expect(reasons((await decide(svc, admin, sale)).body)).toEqual(['consent_lapsed']);
    // The subscriber opts in again.
    const again = await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
    expect(again.body.events[0].kind).toBe('granted');
    expect((await decide(svc, admin, web)).body.allow).toBe(true);
    const history = await call(svc.url, 'GET', `/v1/audit/events?accountId=${id}&type=staff_action`, { token: admin });
    expect(history.body.events.at(-1).data).toMatchObject({ change: 'reopened', status: 'active' });
  });

  it('revoking after the lapse is a revocation; closing with nothing in force lapses nothing', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
    await setStatus(id, 'closed');
    await setStatus(id, 'active');
    const revoke = await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'name', choice: 'revoke' }]);
    expect(revoke.body.events[0].kind).toBe('revoked');
    const bare = await createAccount(svc, admin);
    await setStatus(bare, 'closed');
    const audit = await call(svc.url, 'GET', `/v1/audit/events?accountId=${bare}`, { token: admin });
    expect(audit.body.events.map((e: { type: string; data: { change?: string } }) => e.data.change)).toEqual([
      'opened',
      'closed',
    ]);
  });
});

describe('superseded notices', () => {
  it('a grant under a superseded notice is refused; an older grant reads superseded', async () => {
    const id = await createAccount(svc, admin);
    // Before v2 (material for data_sale) took effect, v1 was the notice in force.
    fixed = Date.parse('2023-02-28T12:00:00Z');
    const before = await putConsents(svc, admin, id, [{ purpose: 'data_sale', category: 'name', choice: 'grant' }], {
      noticeVersion: 'v1',
    });
    expect(before.status).toBe(200);
    const sale = { accountId: id, purpose: 'data_sale', recipient: 'acme-ads', categories: ['name'] };
    expect((await decide(svc, admin, sale)).body.allow).toBe(true);

    fixed = Date.parse('2023-03-02T12:00:00Z');
    expect(await states(id)).toEqual(['data_sale:name:superseded']);
    expect(reasons((await decide(svc, admin, sale)).body)).toEqual(['notice_superseded']);
    const refused = await putConsents(svc, admin, id, [{ purpose: 'data_sale', category: 'name', choice: 'grant' }], {
      noticeVersion: 'v1',
    });
    expect(refused.status).toBe(422);
    expect(refused.body.errors).toEqual([
      { path: 'noticeVersion', message: expect.stringMatching(/^notice v1 was superseded for data_sale by v2/) },
    ]);
    // A revocation under the old notice is still taken: saying no never needs the newer notice.
    const revoke = await putConsents(svc, admin, id, [{ purpose: 'data_sale', category: 'name', choice: 'revoke' }], {
      noticeVersion: 'v1',
      affirmative: false,
    });
    expect(revoke.status).toBe(200);
    // Agreeing again under v2 counts.
    const again = await putConsents(svc, admin, id, [{ purpose: 'data_sale', category: 'name', choice: 'grant' }], {
      noticeVersion: 'v2',
    });
    expect(again.status).toBe(200);
    expect(await states(id)).toEqual(['data_sale:name:granted']);
    expect((await decide(svc, admin, sale)).body.allow).toBe(true);
  });
});
