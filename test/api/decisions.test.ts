import { auditRows } from '../support/audit';
import { adminToken, createAccount, decide, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/** Every row of SPEC's decision table, through the HTTP API, against real PostgreSQL. */

let svc: TestService;
let admin: string;

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

const reasons = (body: { results: { reason: string }[] }) => body.results.map((r) => r.reason);

describe('POST /v1/decisions: the decision table', () => {
  it('exception: allowed without consent, with a bounded validUntil', async () => {
    const id = await createAccount(svc, admin);
    const r = await decide(svc, admin, {
      accountId: id,
      purpose: 'fraud_protection',
      categories: ['ip_addresses', 'device_identifiers'],
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ accountId: id, purpose: 'fraud_protection', allow: true });
    expect(reasons(r.body)).toEqual(['exception', 'exception']);
    expect(r.body.decisionId).toMatch(/^[0-9a-f-]{36}$/);
    const evaluated = Date.parse(r.body.evaluatedAt);
    expect(Date.parse(r.body.validUntil)).toBe(evaluated + svc.config.catalog.decisionReuseSeconds * 1000);
  });

  it('exception_not_applicable: court order without a docket reference, out-of-scope categories', async () => {
    const id = await createAccount(svc, admin);
    const court = { accountId: id, purpose: 'court_order', recipient: 'me-superior-court', categories: ['name'] };
    for (const reference of [undefined, '   ', 'see the attached letter']) {
      const r = await decide(svc, admin, { ...court, ...(reference === undefined ? {} : { reference }) });
      expect(r.body.allow).toBe(false);
      expect(reasons(r.body)).toEqual(['exception_not_applicable']);
      expect(r.body.validUntil).toBeUndefined();
    }
    const withRef = await decide(svc, admin, { ...court, reference: 'ME-2026-118' });
    expect(withRef.body.allow).toBe(true);
    const marketing = await decide(svc, admin, {
      accountId: id,
      purpose: 'own_communications_marketing',
      categories: ['name', 'ssn', 'health', 'financial', 'children', 'communications_content'],
    });
    expect(marketing.body.results.map((r: { allow: boolean }) => r.allow)).toEqual([
      true,
      false,
      false,
      false,
      false,
      false,
    ]);
    expect(new Set(reasons(marketing.body).slice(1))).toEqual(new Set(['exception_not_applicable']));
    const emergency = await decide(svc, admin, {
      accountId: id,
      purpose: 'emergency_services',
      recipient: 'psap-maine',
      categories: ['precise_geolocation', 'health'],
    });
    expect(emergency.body.allow).toBe(false);
    expect(emergency.body.results).toEqual([
      { category: 'precise_geolocation', allow: true, reason: 'exception' },
      { category: 'health', allow: false, reason: 'exception_not_applicable' },
    ]);
  });

  it('consent_granted: cites the consent record and its expiry; validUntil is the earliest expiry', async () => {
    const id = await createAccount(svc, admin);
    // Within the reuse window (15 minutes), so that the expiry decides.
    const soon = new Date(Date.now() + 10 * 60_000).toISOString();
    const put = await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
      { purpose: 'ad_targeting', category: 'demographics', choice: 'grant', expiresAt: soon },
    ]);
    expect(put.status).toBe(200);
    const byCategory = Object.fromEntries(put.body.consents.map((c: { category: string }) => [c.category, c]));
    const r = await decide(svc, admin, {
      accountId: id,
      purpose: 'ad_targeting',
      categories: ['web_browsing_history', 'demographics'],
    });
    expect(r.body.allow).toBe(true);
    expect(r.body.results).toEqual([
      {
        category: 'web_browsing_history',
        allow: true,
        reason: 'consent_granted',
        consentId: byCategory.web_browsing_history.consentId,
        expiresAt: byCategory.web_browsing_history.expiresAt,
      },
      {
        category: 'demographics',
        allow: true,
        reason: 'consent_granted',
        consentId: byCategory.demographics.consentId,
        expiresAt: soon,
      },
    ]);
    expect(r.body.validUntil).toBe(soon);
  });

  it('an allow is reused for the reuse window at most, however far away the consent expires', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
    const r = await decide(svc, admin, {
      accountId: id,
      purpose: 'ad_targeting',
      categories: ['web_browsing_history'],
    });
    expect(r.body.allow).toBe(true);
    expect(svc.config.catalog.decisionReuseSeconds).toBe(900);
    expect(Date.parse(r.body.validUntil)).toBe(Date.parse(r.body.evaluatedAt) + 900_000);
    expect(Date.parse(r.body.results[0].expiresAt)).toBeGreaterThan(Date.now() + 364 * 86_400_000);
  });

  it('no_consent: nothing recorded, or declined without a grant', async () => {
    const id = await createAccount(svc, admin);
    const r = await decide(svc, admin, {
      accountId: id,
      purpose: 'data_sale',
      recipient: 'acme-ads',
      categories: ['name'],
    });
    expect(r.body).toMatchObject({ allow: false, results: [{ category: 'name', allow: false, reason: 'no_consent' }] });
    await putConsents(svc, admin, id, [{ purpose: 'data_sale', category: 'name', choice: 'revoke' }]);
    expect(
      reasons(
        (await decide(svc, admin, { accountId: id, purpose: 'data_sale', recipient: 'acme-ads', categories: ['name'] }))
          .body,
      ),
    ).toEqual(['no_consent']);
  });

  it('consent_revoked: revocation is immediate', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'app_usage_history', choice: 'grant' }]);
    const before = await decide(svc, admin, {
      accountId: id,
      purpose: 'ad_targeting',
      categories: ['app_usage_history'],
    });
    expect(before.body.allow).toBe(true);
    const revoke = await putConsents(
      svc,
      admin,
      id,
      [{ purpose: 'ad_targeting', category: 'app_usage_history', choice: 'revoke' }],
      { affirmative: false },
    );
    expect(revoke.status).toBe(200);
    expect(revoke.body.events[0].kind).toBe('revoked');
    // The very next request, acknowledged revocation in hand, must deny.
    const after = await decide(svc, admin, {
      accountId: id,
      purpose: 'ad_targeting',
      categories: ['app_usage_history'],
    });
    expect(after.body).toMatchObject({ allow: false, results: [{ reason: 'consent_revoked' }] });
  });

  it('consent_expired: a grant that has run out', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [
      {
        purpose: 'ad_targeting',
        category: 'financial',
        choice: 'grant',
        expiresAt: new Date(Date.now() + 400).toISOString(),
      },
    ]);
    await new Promise((r) => setTimeout(r, 500));
    const r = await decide(svc, admin, { accountId: id, purpose: 'ad_targeting', categories: ['financial'] });
    expect(r.body).toMatchObject({ allow: false, results: [{ reason: 'consent_expired' }] });
  });

  it('notice_superseded: a grant under a notice since changed materially for that purpose is refused', async () => {
    const id = await createAccount(svc, admin);
    // v2 is material for data_sale: a grant shown v1 is refused (the decision side: test/api/lifecycle.test.ts).
    const put = await putConsents(svc, admin, id, [{ purpose: 'data_sale', category: 'name', choice: 'grant' }], {
      noticeVersion: 'v1',
    });
    expect(put.status).toBe(422);
    expect(put.body.errors).toEqual([{ path: 'noticeVersion', message: expect.stringMatching(/superseded.*v2/) }]);
    // v1 was not material for ad_targeting.
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }], {
      noticeVersion: 'v1',
    });
    expect(
      (await decide(svc, admin, { accountId: id, purpose: 'ad_targeting', categories: ['name'] })).body.allow,
    ).toBe(true);
    // Agreeing again under the current notice counts.
    await putConsents(svc, admin, id, [{ purpose: 'data_sale', category: 'name', choice: 'grant' }]);
    expect(
      (await decide(svc, admin, { accountId: id, purpose: 'data_sale', recipient: 'acme-ads', categories: ['name'] }))
        .body.allow,
    ).toBe(true);
  });

  it('not_opted_out and opted_out on the opt-out category', async () => {
    const id = await createAccount(svc, admin);
    const body = { accountId: id, purpose: 'product_analytics', categories: ['other_customer_info'] };
    expect((await decide(svc, admin, body)).body).toMatchObject({
      allow: true,
      results: [{ reason: 'not_opted_out' }],
    });
    await putConsents(
      svc,
      admin,
      id,
      [{ purpose: 'product_analytics', category: 'other_customer_info', choice: 'opt_out' }],
      { affirmative: false },
    );
    expect((await decide(svc, admin, body)).body).toMatchObject({ allow: false, results: [{ reason: 'opted_out' }] });
    await putConsents(svc, admin, id, [
      { purpose: 'product_analytics', category: 'other_customer_info', choice: 'withdraw_opt_out' },
    ]);
    expect((await decide(svc, admin, body)).body).toMatchObject({
      allow: true,
      results: [{ reason: 'not_opted_out' }],
    });
  });

  it('unknown_account and account_closed', async () => {
    const unknown = await decide(svc, admin, {
      accountId: uniqueId('nobody'),
      purpose: 'fraud_protection',
      categories: ['ip_addresses'],
    });
    expect(unknown.body).toMatchObject({ allow: false, results: [{ reason: 'unknown_account' }] });
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'health', choice: 'grant' }]);
    await call(svc.url, 'POST', '/v1/accounts', {
      token: admin,
      body: { accounts: [{ accountId: id, status: 'closed' }] },
    });
    const closed = await decide(svc, admin, { accountId: id, purpose: 'ad_targeting', categories: ['health'] });
    expect(closed.body).toMatchObject({ allow: false, results: [{ reason: 'account_closed' }] });
  });

  it('unknown purpose or category: 422 problem, never an allow', async () => {
    const id = await createAccount(svc, admin);
    for (const body of [
      { accountId: id, purpose: 'curiosity', categories: ['name'] },
      { accountId: id, purpose: 'fraud_protection', categories: ['shoe_size'] },
      { accountId: id, purpose: 'fraud_protection', categories: [] },
      { accountId: 'bad id!', purpose: 'fraud_protection', categories: ['name'] },
      { accountId: id, purpose: 'fraud_protection' },
      { accountId: id, purpose: 'fraud_protection', categories: ['name'], extra: true },
    ]) {
      const r = await decide(svc, admin, body);
      expect(r.status).toBe(422);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.body).toMatchObject({ type: 'urn:optgate:problem:validation', status: 422 });
      expect(r.body.allow).toBeUndefined();
    }
  });

  it('repeated categories are judged once', async () => {
    const id = await createAccount(svc, admin);
    const r = await decide(svc, admin, {
      accountId: id,
      purpose: 'billing',
      categories: ['billing_info', 'billing_info'],
    });
    expect(r.body.results).toEqual([{ category: 'billing_info', allow: true, reason: 'exception' }]);
  });
});

describe('the decision id and the request id', () => {
  const ask = (accountId: string, headers: Record<string, string> = {}) =>
    call(svc.url, 'POST', '/v1/decisions', {
      token: admin,
      headers,
      body: { accountId, purpose: 'ad_targeting', categories: ['web_browsing_history'] },
    });
  const headerOf = async (decisionId: string) =>
    (await svc.sql.query('select request_id from audit_decisions where decision_id = $1', [decisionId])).rows;
  const recordOf = async (decisionId: string) =>
    (await auditRows(svc.databaseUrl, (r) => r.type === 'decision' && r.data.decisionId === decisionId))[0]!;

  it("without the caller's X-Request-Id: one id, optgate's, for both; the audit header stores it once", async () => {
    const id = await createAccount(svc, admin);
    const r = await ask(id);
    expect(r.status).toBe(200);
    expect(r.body.decisionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.headers.get('x-request-id')).toBe(r.body.decisionId);
    expect(await headerOf(r.body.decisionId)).toEqual([{ request_id: null }]);
    // The record is whole: it names the request, and its hash verifies (auditRows rebuilds it; chain-db checks).
    expect((await recordOf(r.body.decisionId)).data).toMatchObject({
      decisionId: r.body.decisionId,
      requestId: r.body.decisionId,
    });
    // Each request its own id.
    expect((await ask(id)).body.decisionId).not.toBe(r.body.decisionId);
  });

  it("with the caller's X-Request-Id: kept as the request id, never used as the decision id", async () => {
    const id = await createAccount(svc, admin);
    const mine = uniqueId('pipeline-request');
    const first = await ask(id, { 'x-request-id': mine });
    const second = await ask(id, { 'x-request-id': mine });
    expect(first.headers.get('x-request-id')).toBe(mine);
    expect(first.body.decisionId).not.toBe(mine);
    expect(second.body.decisionId).not.toBe(first.body.decisionId);
    expect(await headerOf(first.body.decisionId)).toEqual([{ request_id: mine }]);
    expect((await recordOf(first.body.decisionId)).data).toMatchObject({
      decisionId: first.body.decisionId,
      requestId: mine,
    });
    // A caller's id that is itself a UUID is still the caller's: stored, not taken as the decision's.
    const uuid = '0b6d4a8e-2f41-4c1e-9d7a-5b3c2a1f0e9d';
    const third = await ask(id, { 'x-request-id': uuid });
    expect(third.body.decisionId).not.toBe(uuid);
    expect(await headerOf(third.body.decisionId)).toEqual([{ request_id: uuid }]);
  });
});

describe('POST /v1/decisions/batch', () => {
  it('answers in request order, repeats included, with the deny reasons', async () => {
    const granted = await createAccount(svc, admin);
    const bare = await createAccount(svc, admin);
    const closed = await createAccount(svc, admin, 'closed');
    await putConsents(svc, admin, granted, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
    const ghost = uniqueId('ghost');
    const accountIds = [bare, granted, ghost, closed, granted];
    const r = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: admin,
      body: { purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds },
    });
    expect(r.status).toBe(200);
    expect(r.body.purpose).toBe('ad_targeting');
    expect(r.body.results.map((x: { accountId: string }) => x.accountId)).toEqual(accountIds);
    expect(r.body.results[0]).toEqual({
      accountId: bare,
      allow: false,
      denied: [{ category: 'web_browsing_history', reason: 'no_consent' }],
    });
    expect(r.body.results[1]).toMatchObject({ accountId: granted, allow: true });
    expect(Date.parse(r.body.results[1].validUntil)).toBeGreaterThan(Date.now());
    expect(r.body.results[2].denied).toEqual([{ category: 'web_browsing_history', reason: 'unknown_account' }]);
    expect(r.body.results[3].denied).toEqual([{ category: 'web_browsing_history', reason: 'account_closed' }]);
    expect(r.body.results[4]).toEqual(r.body.results[1]);
  });

  it('takes 10,000 accounts and refuses 10,001 with 413', async () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `bulk-${i}`);
    const ok = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: admin,
      body: { purpose: 'fraud_protection', categories: ['ip_addresses'], accountIds: ids },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.results).toHaveLength(10_000);
    expect(ok.body.results.every((x: { allow: boolean }) => !x.allow)).toBe(true);
    const tooMany = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: admin,
      body: { purpose: 'fraud_protection', categories: ['ip_addresses'], accountIds: [...ids, 'one-more'] },
    });
    expect(tooMany.status).toBe(413);
    expect(tooMany.body).toMatchObject({ type: 'urn:optgate:problem:payload-too-large', status: 413 });
  });
});
