import { adminToken, createAccount, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

let svc: TestService;
let admin: string;

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

const DAY = 86_400_000;

describe('PUT /v1/accounts/:accountId/consents', () => {
  it('records each change as an event and returns the changed state', async () => {
    const id = await createAccount(svc, admin);
    const r = await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
      { purpose: 'product_analytics', category: 'other_customer_info', choice: 'opt_out' },
    ]);
    expect(r.status).toBe(200);
    expect(r.body.accountId).toBe(id);
    expect(r.body.events.map((e: { kind: string }) => e.kind)).toEqual(['granted', 'opted_out']);
    const grant = r.body.consents.find((c: { category: string }) => c.category === 'web_browsing_history');
    expect(grant).toMatchObject({
      purpose: 'ad_targeting',
      state: 'granted',
      noticeVersion: 'v3',
      consentId: r.body.events[0].eventId,
    });
    // The default term is the catalog's consentTermDays.
    const term = Date.parse(grant.expiresAt) - Date.parse(grant.grantedAt);
    expect(term).toBe(svc.config.catalog.consentTermDays * DAY);

    const { rows } = await svc.sql.query(
      'select kind, channel, actor_type, actor_id, client_id, notice_sha256, request_id, ip_hash, ' +
        'user_agent_hash from consent_events where account_id = $1 order by id',
      [id],
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      kind: 'granted',
      channel: 'call_center',
      actor_type: 'staff',
      actor_id: 'agent-7',
      client_id: 'test-pipeline',
    });
    expect(rows[0].notice_sha256).toBe(svc.config.catalog.noticesByVersion.get('v3')!.sha256);
    expect(rows[0].request_id).toBe(r.headers.get('x-request-id'));
    // Evidence is kept only as keyed hashes.
    expect(rows[0].ip_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0].user_agent_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('renews an active grant and revokes it', async () => {
    const id = await createAccount(svc, admin);
    const change = { purpose: 'data_sale', category: 'demographics' } as const;
    await putConsents(svc, admin, id, [{ ...change, choice: 'grant' }]);
    const renew = await putConsents(svc, admin, id, [
      { ...change, choice: 'grant', expiresAt: new Date(Date.now() + 700 * DAY).toISOString() },
    ]);
    expect(renew.body.events[0].kind).toBe('renewed');
    const revoke = await putConsents(svc, admin, id, [{ ...change, choice: 'revoke' }], { affirmative: false });
    expect(revoke.body.events[0].kind).toBe('revoked');
    expect(revoke.body.consents[0]).toMatchObject({ state: 'revoked' });
    expect(revoke.body.consents[0].revokedAt).toBeDefined();
  });

  it('applies several changes to one item in order', async () => {
    const id = await createAccount(svc, admin);
    const r = await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'health', choice: 'grant' },
      { purpose: 'ad_targeting', category: 'health', choice: 'revoke' },
    ]);
    expect(r.body.events.map((e: { kind: string }) => e.kind)).toEqual(['granted', 'revoked']);
    expect(r.body.consents).toEqual([expect.objectContaining({ category: 'health', state: 'revoked' })]);
  });

  it.each([
    [
      'a grant without affirmative: true',
      { affirmative: false },
      [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }],
      'changes.0.choice',
    ],
    [
      'a grant with affirmative missing',
      { affirmative: undefined },
      [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }],
      'changes.0.choice',
    ],
    [
      'an unknown notice version',
      { noticeVersion: 'v99' },
      [{ purpose: 'ad_targeting', category: 'name', choice: 'revoke' }],
      'noticeVersion',
    ],
    [
      'grant on the opt-out category',
      {},
      [{ purpose: 'ad_targeting', category: 'other_customer_info', choice: 'grant' }],
      'changes.0.choice',
    ],
    [
      'opt_out on an opt-in category',
      {},
      [{ purpose: 'ad_targeting', category: 'name', choice: 'opt_out' }],
      'changes.0.choice',
    ],
    [
      'a past expiry',
      {},
      [
        {
          purpose: 'ad_targeting',
          category: 'name',
          choice: 'grant',
          expiresAt: new Date(Date.now() - 1000).toISOString(),
        },
      ],
      'changes.0.expiresAt',
    ],
    [
      'an expiry past the maximum term',
      {},
      [
        {
          purpose: 'ad_targeting',
          category: 'name',
          choice: 'grant',
          expiresAt: new Date(Date.now() + 731 * DAY).toISOString(),
        },
      ],
      'changes.0.expiresAt',
    ],
    [
      'consent to a statutory exception',
      {},
      [{ purpose: 'billing', category: 'name', choice: 'grant' }],
      'changes.0.purpose',
    ],
    ['an unknown purpose', {}, [{ purpose: 'curiosity', category: 'name', choice: 'grant' }], 'changes.0.purpose'],
    [
      'an unknown category',
      {},
      [{ purpose: 'ad_targeting', category: 'shoe_size', choice: 'grant' }],
      'changes.0.category',
    ],
    [
      'a category its purpose does not ask for (the catalog lists them)',
      {},
      [{ purpose: 'ad_targeting', category: 'ssn', choice: 'grant' }],
      'changes.0.category',
    ],
    [
      'the portal channel',
      { channel: 'portal' },
      [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }],
      'channel',
    ],
    ['no changes', {}, [], 'changes'],
  ])('refuses %s with 422 and records nothing', async (_label, extra, changes, path) => {
    const id = await createAccount(svc, admin);
    const r = await putConsents(svc, admin, id, changes as never, extra);
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({
      type: 'urn:optgate:problem:validation',
      status: 422,
      requestId: r.headers.get('x-request-id'),
    });
    expect(r.body.errors.map((e: { path: string }) => e.path)).toContain(path);
    const { rows } = await svc.sql.query('select count(*)::int as n from consent_events where account_id = $1', [id]);
    expect(rows[0].n).toBe(0);
  });

  it('is all or nothing: one bad change records none', async () => {
    const id = await createAccount(svc, admin);
    const r = await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
      { purpose: 'ad_targeting', category: 'other_customer_info', choice: 'grant' },
    ]);
    expect(r.status).toBe(422);
    const state = await call(svc.url, 'GET', `/v1/accounts/${id}/consents`, { token: admin });
    expect(state.body.consents).toEqual([]);
  });

  it('404 for an unknown account', async () => {
    const r = await putConsents(svc, admin, uniqueId('ghost'), [
      { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
    ]);
    expect(r.status).toBe(404);
    expect(r.body.type).toBe('urn:optgate:problem:not-found');
  });

  it('serialises concurrent changes to one account: every event lands, the state is the last one', async () => {
    const id = await createAccount(svc, admin);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        putConsents(svc, admin, id, [
          { purpose: 'ad_targeting', category: 'ip_addresses', choice: i % 2 ? 'revoke' : 'grant' },
        ]),
      ),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const { rows } = await svc.sql.query('select kind from consent_events where account_id = $1 order by id', [id]);
    expect(rows).toHaveLength(20);
    const stateAfter: Record<string, string> = {
      granted: 'granted',
      renewed: 'granted',
      revoked: 'revoked',
      declined: 'declined',
    };
    const state = await call(svc.url, 'GET', `/v1/accounts/${id}/consents`, { token: admin });
    expect(state.body.consents[0].state).toBe(stateAfter[rows[rows.length - 1].kind]);
  });
});

describe('GET /v1/accounts/:accountId/consents', () => {
  it('lists the current state per purpose × category', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
      { purpose: 'data_sale', category: 'name', choice: 'revoke' },
    ]);
    const r = await call(svc.url, 'GET', `/v1/accounts/${id}/consents`, { token: await svc.token('decisions') });
    expect(r.status).toBe(200);
    expect(r.body.accountId).toBe(id);
    expect(r.body.consents).toEqual([
      expect.objectContaining({ purpose: 'ad_targeting', category: 'name', state: 'granted', noticeVersion: 'v3' }),
      expect.objectContaining({ purpose: 'data_sale', category: 'name', state: 'declined' }),
    ]);
  });

  it('404 for an unknown account, 422 for a malformed id', async () => {
    expect((await call(svc.url, 'GET', `/v1/accounts/${uniqueId('ghost')}/consents`, { token: admin })).status).toBe(
      404,
    );
    expect((await call(svc.url, 'GET', `/v1/accounts/${'x'.repeat(65)}/consents`, { token: admin })).status).toBe(422);
  });
});

describe('POST /v1/accounts', () => {
  it('upserts and reports how many', async () => {
    const a = uniqueId();
    const b = uniqueId();
    const r = await call(svc.url, 'POST', '/v1/accounts', {
      token: admin,
      body: {
        accounts: [
          { accountId: a, status: 'active', serviceState: 'provisioned', billingState: 'current' },
          { accountId: b, status: 'closed' },
        ],
      },
    });
    expect(r.body).toEqual({ upserted: 2, changed: 2 });
    const again = await call(svc.url, 'POST', '/v1/accounts', {
      token: admin,
      body: {
        accounts: [
          { accountId: a, status: 'active', serviceState: 'provisioned', billingState: 'current' },
          { accountId: b, status: 'active' },
        ],
      },
    });
    expect(again.body).toEqual({ upserted: 2, changed: 1 });
    const { rows } = await svc.sql.query(
      'select account_id, status, service_state from accounts where account_id = any($1) order by account_id',
      [[a, b]],
    );
    expect(rows.find((x) => x.account_id === b).status).toBe('active');
  });

  it('takes 10,000 accounts in one call and refuses 10,001', async () => {
    const accounts = Array.from({ length: 10_000 }, (_, i) => ({ accountId: `imp-${i}`, status: 'active' }));
    const ok = await call(svc.url, 'POST', '/v1/accounts', { token: admin, body: { accounts } });
    expect(ok.status).toBe(200);
    expect(ok.body.upserted).toBe(10_000);
    const tooMany = await call(svc.url, 'POST', '/v1/accounts', {
      token: admin,
      body: { accounts: [...accounts, { accountId: 'imp-x', status: 'active' }] },
    });
    expect(tooMany.status).toBe(413);
  });

  it.each([
    ['a bad account id', { accounts: [{ accountId: 'has space', status: 'active' }] }],
    ['an id of 65 characters', { accounts: [{ accountId: 'a'.repeat(65), status: 'active' }] }],
    ['an unknown status', { accounts: [{ accountId: 'ok-1', status: 'suspended' }] }],
    ['an empty list', { accounts: [] }],
    ['no list', {}],
  ])('refuses %s with 422', async (_label, body) => {
    const r = await call(svc.url, 'POST', '/v1/accounts', { token: admin, body });
    expect(r.status).toBe(422);
  });
});

describe('capture evidence: staff and point of sale', () => {
  const grant = { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' } as const;
  const staffBody = (extra: object = {}) => ({
    channel: 'point_of_sale',
    actor: { type: 'staff', id: 'clerk-12' },
    noticeVersion: 'v3',
    affirmative: true,
    changes: [grant],
    ...extra,
  });

  it('a change by staff needs how they verified the subscriber and the call or ticket id', async () => {
    const id = await createAccount(svc, admin);
    const put = (body: object) => call(svc.url, 'PUT', `/v1/accounts/${id}/consents`, { token: admin, body });
    const missing = await put(staffBody());
    expect(missing.status).toBe(422);
    expect(missing.body.errors).toEqual([
      { path: 'verification', message: 'staff must say how they verified the subscriber' },
      { path: 'reference', message: 'staff must give the call or ticket id' },
    ]);
    const unknown = await put(staffBody({ verification: 'a_hunch', reference: 'T-1' }));
    expect(unknown.status).toBe(422);
    expect(unknown.body.errors[0].path).toBe('verification');
    const bad = await put(staffBody({ verification: 'in_person_id', reference: 'T\n1' }));
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].path).toBe('reference');

    const ok = await put(staffBody({ verification: 'in_person_id', reference: 'STORE-17-T-88' }));
    expect(ok.status).toBe(200);
    const [event] = ok.body.events;
    // The receipt the store can send the subscriber, at the time.
    expect(event.receiptUrl).toBe(`${svc.config.portal.baseUrl}/receipts/${ok.body.receiptId}`);
    expect(ok.body.receiptUrl).toBe(event.receiptUrl);
    const { rows } = await svc.sql.query('select verification, reference from consent_events where event_id = $1', [
      event.eventId,
    ]);
    expect(rows[0]).toEqual({ verification: 'in_person_id', reference: 'STORE-17-T-88' });
    const audit = await call(svc.url, 'GET', `/v1/audit/events?accountId=${id}&type=consent_event`, { token: admin });
    expect(audit.body.events[0].data).toMatchObject({
      eventId: event.eventId,
      actorType: 'staff',
      actorId: 'clerk-12',
      channel: 'point_of_sale',
      verification: 'in_person_id',
      reference: 'STORE-17-T-88',
    });
  });

  it('actor "subscriber" only from a client whose token carries subscriber_channel', async () => {
    const id = await createAccount(svc, admin);
    const body = { channel: 'api', actor: 'subscriber', noticeVersion: 'v3', affirmative: true, changes: [grant] };
    const plain = await svc.token('consents:write');
    const refused = await call(svc.url, 'PUT', `/v1/accounts/${id}/consents`, { token: plain, body });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.body.detail).toMatch(/subscriber_channel/);
    const falsy = await svc.token('consents:write', [], { claims: { subscriber_channel: 'yes' } });
    expect((await call(svc.url, 'PUT', `/v1/accounts/${id}/consents`, { token: falsy, body })).status).toBe(403);
    const kiosk = await svc.token('consents:write', [], { claims: { subscriber_channel: true } });
    const taken = await call(svc.url, 'PUT', `/v1/accounts/${id}/consents`, { token: kiosk, body });
    expect(taken.status).toBe(200);
    expect(
      (await svc.sql.query('select count(*)::int as n from consent_events where account_id = $1', [id])).rows[0].n,
    ).toBe(1);
  });
});
