import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Sale, disclosure and access in place name their recipient: from the registry, of a kind the
 * purpose allows, and covered by the subscriber's opt-in. Statutory exceptions have a scope.
 */

let svc: TestService;
let admin: string;

beforeAll(async () => {
  // The filter is checked in its declared-categories mode too.
  svc = await startTestService({ FILTER_ALLOW_DECLARED: 'true' });
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

const sale = (accountId: string, recipient?: string, categories = ['name']) => ({
  accountId,
  purpose: 'data_sale',
  categories,
  ...(recipient === undefined ? {} : { recipient }),
});

describe('GET /v1/recipients', () => {
  it('lists the registry with the purposes that may name each recipient (scope decisions)', async () => {
    const r = await call(svc.url, 'GET', '/v1/recipients', { token: await svc.token('decisions') });
    expect(r.status).toBe(200);
    expect(r.body.recipients).toEqual(
      expect.arrayContaining([
        {
          id: 'acme-ads',
          legalName: 'Acme Advertising LLC',
          kind: 'advertiser',
          retentionDays: 90,
          purposes: ['data_sale', 'third_party_disclosure', 'permit_access'],
        },
        expect.objectContaining({
          id: 'cloudproc',
          kind: 'processor',
          purposes: ['third_party_disclosure', 'permit_access'],
        }),
        expect.objectContaining({ id: 'psap-maine', kind: 'emergency_service', purposes: ['emergency_services'] }),
        expect.objectContaining({ id: 'me-superior-court', kind: 'court', purposes: ['court_order'] }),
      ]),
    );
    expect(new Set(r.body.recipients.map((x: { kind: string }) => x.kind)).size).toBe(5);
    expect((await call(svc.url, 'GET', '/v1/recipients')).status).toBe(401);
    expect((await call(svc.url, 'GET', '/v1/recipients', { token: await svc.token('audit:read') })).status).toBe(403);
  });
});

describe('a request that must name its recipient', () => {
  it.each([
    ['data_sale', undefined, /must name its recipient/],
    ['third_party_disclosure', undefined, /must name its recipient/],
    ['permit_access', undefined, /must name its recipient/],
    ['emergency_services', undefined, /must name its recipient/],
    ['court_order', undefined, /must name its recipient/],
    ['data_sale', 'shadow-broker', /not in the recipient registry/],
    ['ad_targeting', 'shadow-broker', /not in the recipient registry/],
    ['data_sale', 'cloudproc', /kind advertiser or data_broker/],
    ['permit_access', 'me-superior-court', /kind advertiser or data_broker or processor/],
    ['court_order', 'acme-ads', /kind court/],
    ['emergency_services', 'me-superior-court', /kind emergency_service/],
  ])('%s with recipient %s: 422 naming the field', async (purpose, recipient, message) => {
    const id = await createAccount(svc, admin);
    const categories = purpose === 'emergency_services' ? ['precise_geolocation'] : ['name'];
    const body = { purpose, categories, reference: 'CV-2026-7', ...(recipient ? { recipient } : {}) };
    const single = await decide(svc, admin, { ...body, accountId: id });
    expect(single.status).toBe(422);
    expect(single.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(single.body.errors).toEqual([{ path: 'recipient', message: expect.stringMatching(message) }]);
    const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: admin,
      body: { ...body, accountIds: [id] },
    });
    expect(batch.status).toBe(422);
    expect(batch.body.errors[0].path).toBe('recipient');
    const query = new URLSearchParams({ purpose, categories: categories.join(','), reference: 'CV-2026-7' });
    if (recipient) query.set('recipient', recipient);
    const filter = await fetch(`${svc.url}/v1/filter?${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/x-ndjson' },
      body: `{"accountId":"${id}"}\n`,
    });
    expect(filter.status).toBe(422);
    expect(((await filter.json()) as { errors: { path: string }[] }).errors[0]!.path).toBe('recipient');
  });
});

describe('an opt-in for named recipients', () => {
  it('covers the recipients it names, and no other', async () => {
    const id = await createAccount(svc, admin);
    const put = await putConsents(svc, admin, id, [
      { purpose: 'data_sale', category: 'name', choice: 'grant', recipients: ['databroker-one'] },
    ]);
    expect(put.status).toBe(200);
    expect(put.body.events[0].recipients).toEqual(['databroker-one']);
    expect(put.body.consents[0].recipients).toEqual(['databroker-one']);
    const named = await decide(svc, admin, sale(id, 'databroker-one'));
    expect(named.body).toMatchObject({ allow: true, results: [{ reason: 'consent_granted' }] });
    const other = await decide(svc, admin, sale(id, 'acme-ads'));
    expect(other.body).toMatchObject({ allow: false, results: [{ reason: 'recipient_not_covered' }] });
    // The batch and the filter judge the recipient the same way.
    const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: admin,
      body: { purpose: 'data_sale', categories: ['name'], recipient: 'acme-ads', accountIds: [id] },
    });
    expect(batch.body.results[0]).toEqual({
      accountId: id,
      allow: false,
      denied: [{ category: 'name', reason: 'recipient_not_covered' }],
    });
    // The change feed tells pipelines whom the opt-in names.
    const feed = await call(svc.url, 'GET', '/v1/consent-changes?limit=1000', { token: admin });
    const mine = feed.body.changes.filter((c: { accountId: string }) => c.accountId === id);
    expect(mine).toEqual([expect.objectContaining({ kind: 'granted', recipients: ['databroker-one'] })]);
  });

  it('a renewal keeps the recipients of the grant it renews, unless it names others', async () => {
    const id = await createAccount(svc, admin);
    const grant = { purpose: 'data_sale', category: 'name', choice: 'grant' } as const;
    await putConsents(svc, admin, id, [{ ...grant, recipients: ['databroker-one'] }]);
    const renewed = await putConsents(svc, admin, id, [grant]);
    expect(renewed.body.events[0]).toMatchObject({ kind: 'renewed', recipients: ['databroker-one'] });
    expect((await decide(svc, admin, sale(id, 'acme-ads'))).body.results[0].reason).toBe('recipient_not_covered');
    // Widening is an explicit act: it names the recipients.
    const widened = await putConsents(svc, admin, id, [{ ...grant, recipients: ['databroker-one', 'acme-ads'] }]);
    expect(widened.body.events[0]).toMatchObject({ kind: 'renewed', recipients: ['databroker-one', 'acme-ads'] });
    expect((await decide(svc, admin, sale(id, 'acme-ads'))).body.allow).toBe(true);
  });

  it('given for all recipients: every registered recipient of an allowed kind, recorded by name', async () => {
    const id = await createAccount(svc, admin);
    const put = await putConsents(svc, admin, id, [
      { purpose: 'permit_access', category: 'ip_addresses', choice: 'grant' },
    ]);
    expect(put.status).toBe(200);
    expect(put.body.events[0].recipients).toEqual(['acme-ads', 'databroker-one', 'cloudproc']);
    const access = { accountId: id, purpose: 'permit_access', categories: ['ip_addresses'] };
    expect((await decide(svc, admin, { ...access, recipient: 'cloudproc' })).body.allow).toBe(true);
    const rows = await svc.sql.query('select recipients from consent_events where account_id = $1', [id]);
    expect(rows.rows[0].recipients).toEqual(['acme-ads', 'databroker-one', 'cloudproc']);
  });

  it('refuses recipients that are unknown, of the wrong kind, repeated, or on a purpose that names none', async () => {
    const id = await createAccount(svc, admin);
    const r = await putConsents(svc, admin, id, [
      { purpose: 'data_sale', category: 'name', choice: 'grant', recipients: ['shadow-broker', 'cloudproc'] },
      { purpose: 'data_sale', category: 'health', choice: 'grant', recipients: ['acme-ads', 'acme-ads'] },
      { purpose: 'ad_targeting', category: 'name', choice: 'grant', recipients: ['acme-ads'] },
      { purpose: 'data_sale', category: 'health', choice: 'revoke', recipients: ['acme-ads'] },
    ]);
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual([
      { path: 'changes.0.recipients.0', message: expect.stringMatching(/not in the recipient registry/) },
      { path: 'changes.0.recipients.1', message: expect.stringMatching(/kind advertiser or data_broker/) },
      { path: 'changes.1.recipients', message: 'names a recipient twice' },
      { path: 'changes.2.recipients', message: 'this purpose does not name recipients' },
      { path: 'changes.3.recipients', message: expect.stringMatching(/only a grant names recipients/) },
    ]);
    expect((await call(svc.url, 'GET', `/v1/accounts/${id}/consents`, { token: admin })).body.consents).toEqual([]);
  });

  it('a grant recorded before recipients were named covers none of them', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [{ purpose: 'third_party_disclosure', category: 'name', choice: 'grant' }]);
    // As an opt-in recorded before this version holds it: no recipients. (No decision has cached the account yet.)
    await svc.sql.query('update consent_state set recipients = null where account_id = $1', [id]);
    const r = await decide(svc, admin, {
      accountId: id,
      purpose: 'third_party_disclosure',
      recipient: 'acme-ads',
      categories: ['name'],
    });
    expect(r.body).toMatchObject({ allow: false, results: [{ reason: 'recipient_not_covered' }] });
  });
});

describe('exceptions have a scope', () => {
  it('emergency services and court orders name a recipient of their kind; the decision records it', async () => {
    const id = await createAccount(svc, admin);
    const emergency = await decide(svc, admin, {
      accountId: id,
      purpose: 'emergency_services',
      recipient: 'psap-maine',
      categories: ['precise_geolocation'],
    });
    expect(emergency.body).toMatchObject({ allow: true, results: [{ reason: 'exception' }] });
    const court = await decide(svc, admin, {
      accountId: id,
      purpose: 'court_order',
      recipient: 'me-superior-court',
      reference: 'CV-2026-00123',
      categories: ['communications_content'],
    });
    expect(court.body.allow).toBe(true);
    const audit = await call(svc.url, 'GET', `/v1/audit/events?accountId=${id}&type=decision`, { token: admin });
    expect(audit.body.events.map((e: { data: { recipient?: string } }) => e.data.recipient)).toEqual([
      'psap-maine',
      'me-superior-court',
    ]);
  });
});
