import { createHmac } from 'node:crypto';
import { loadKeys } from '../../src/platform/auth/keys';
import { auditRows, contentOf, decisionRecords, deleteRedisPrefix, recordHash } from '../support/audit';
import { adminToken, createAccount, decide, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * SPEC "Audit": every consent event, decision and staff action is an audit record, written before
 * the response it describes. Real service, real PostgreSQL: the records are read back from the
 * database the moment the response arrives; and when the append cannot commit, the caller gets
 * 503, never an allow.
 */

let svc: TestService;
let admin: string;
let granted: string;
let grantIds: Record<string, string>;

// A short statement timeout: the lock held by the failure tests makes the append time out fast.
beforeAll(async () => {
  svc = await startTestService({ DB_STATEMENT_TIMEOUT_MS: '600' });
  admin = await adminToken(svc);
  granted = await createAccount(svc, admin);
  const put = await putConsents(svc, admin, granted, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    { purpose: 'ad_targeting', category: 'demographics', choice: 'grant' },
  ]);
  expect(put.status).toBe(200);
  grantIds = Object.fromEntries(
    put.body.consents.map((c: { category: string; consentId: string }) => [c.category, c.consentId]),
  );
});
afterAll(async () => {
  await svc.stop();
  await deleteRedisPrefix(svc.config.redis.prefix);
});

const count = async (type: string) => (await auditRows(svc.databaseUrl, (r) => r.type === type)).length;

describe('records written before the response', () => {
  it(
    'a single allow: its record is in the database when the answer arrives, citing the consents it ' + 'relied on',
    async () => {
      const r = await decide(svc, admin, {
        accountId: granted,
        purpose: 'ad_targeting',
        categories: ['web_browsing_history', 'demographics'],
        recipient: 'acme-ads',
      });
      expect(r.status).toBe(200);
      expect(r.body.allow).toBe(true);
      const [rec, ...more] = await decisionRecords(svc.databaseUrl, r.body.decisionId);
      expect(more).toHaveLength(0);
      expect(rec).toMatchObject({ type: 'decision', outcome: 'allow', accountId: granted });
      expect(rec!.data).toEqual({
        decisionId: r.body.decisionId,
        endpoint: 'single',
        clientId: 'test-pipeline',
        requestId: r.headers.get('x-request-id'),
        purpose: 'ad_targeting',
        categories: ['web_browsing_history', 'demographics'],
        recipient: 'acme-ads',
        evaluatedAt: r.body.evaluatedAt,
        validUntil: r.body.validUntil,
        results: r.body.results,
      });
      expect(rec!.data.results.map((x: { consentId: string }) => x.consentId)).toEqual([
        grantIds.web_browsing_history,
        grantIds.demographics,
      ]);
    },
  );

  it('a single deny: recorded with its reasons and no consent ids', async () => {
    const bare = await createAccount(svc, admin);
    const r = await decide(svc, admin, {
      accountId: bare,
      purpose: 'data_sale',
      recipient: 'acme-ads',
      categories: ['name', 'ssn'],
    });
    expect(r.body.allow).toBe(false);
    const [rec] = await decisionRecords(svc.databaseUrl, r.body.decisionId);
    expect(rec).toMatchObject({ type: 'decision', outcome: 'deny', accountId: bare });
    expect(rec!.data).toMatchObject({
      purpose: 'data_sale',
      recipient: 'acme-ads',
      categories: ['name', 'ssn'],
      clientId: 'test-pipeline',
      endpoint: 'single',
    });
    expect(rec!.data.results).toEqual([
      { category: 'name', allow: false, reason: 'no_consent' },
      { category: 'ssn', allow: false, reason: 'no_consent' },
    ]);
    expect(rec!.data.validUntil).toBeUndefined();
  });

  it('an unknown account is recorded too (deny, unknown_account)', async () => {
    const ghost = uniqueId('ghost');
    const r = await decide(svc, admin, { accountId: ghost, purpose: 'fraud_protection', categories: ['ip_addresses'] });
    const [rec] = await decisionRecords(svc.databaseUrl, r.body.decisionId);
    expect(rec).toMatchObject({ outcome: 'deny', accountId: ghost });
    expect(rec!.data.results).toEqual([{ category: 'ip_addresses', allow: false, reason: 'unknown_account' }]);
  });

  it('a batch: one record per account judged, in request order, allows and denies, all before the answer', async () => {
    const bare = await createAccount(svc, admin);
    const closed = await createAccount(svc, admin, 'closed');
    const ghost = uniqueId('ghost');
    const accountIds = [bare, granted, ghost, closed];
    const r = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: admin,
      body: { purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds },
    });
    expect(r.status).toBe(200);
    const recs = await decisionRecords(svc.databaseUrl, r.body.decisionId);
    expect(recs.map((x) => x.accountId)).toEqual(accountIds);
    expect(recs.map((x) => x.outcome)).toEqual(['deny', 'allow', 'deny', 'deny']);
    // Contiguous in the chain: committed together.
    expect(recs.map((x) => x.seq)).toEqual(recs.map((_, i) => recs[0]!.seq + i));
    for (const [i, rec] of recs.entries()) {
      const answer = r.body.results[i];
      expect(rec.data).toMatchObject({
        decisionId: r.body.decisionId,
        endpoint: 'batch',
        clientId: 'test-pipeline',
        purpose: 'ad_targeting',
        categories: ['web_browsing_history'],
      });
      expect(rec.outcome === 'allow').toBe(answer.allow);
      if (answer.allow) {
        expect(rec.data.validUntil).toBe(answer.validUntil);
        expect(rec.data.results).toEqual([
          expect.objectContaining({ allow: true, reason: 'consent_granted', consentId: grantIds.web_browsing_history }),
        ]);
      } else {
        expect(
          rec.data.results.map((x: { reason: string }) => ({ category: 'web_browsing_history', reason: x.reason })),
        ).toEqual(answer.denied);
      }
    }
  });

  it(
    'free text with backslashes, quotes, tabs and non-ASCII is stored exactly as hashed (decisions and staff ' +
      'actions go in by COPY)',
    async () => {
      const reference = 'ad\\co "partner" \\N \\. — Zürich 😀 ref\\t\\n';
      const r = await decide(svc, admin, {
        accountId: granted,
        purpose: 'ad_targeting',
        categories: ['demographics'],
        reference,
      });
      expect(r.status).toBe(200);
      const subject = 'compliance\\desk\t"7"\n';
      const exp = await call(svc.url, 'POST', '/v1/audit/exports', {
        token: await svc.token('audit:read', [], { subject }),
        body: { format: 'ndjson', accountId: granted },
      });
      expect(exp.status).toBe(202);
      const [rec] = await decisionRecords(svc.databaseUrl, r.body.decisionId);
      expect(rec!.data).toMatchObject({ reference });
      const [staff] = await auditRows(
        svc.databaseUrl,
        (x) => x.type === 'staff_action' && x.data.exportId === exp.body.exportId,
      );
      expect(staff!.data).toMatchObject({
        action: 'export_requested',
        actor: subject,
        format: 'ndjson',
        filters: { accountId: granted },
      });
      expect(staff!.accountId).toBe(granted);
      for (const x of [rec!, staff!]) {
        expect(recordHash(x.prevHash, x.content, true, x.accountSalt)).toBe(x.hash);
        expect(contentOf(JSON.parse(x.content))).toBe(x.content);
      }
    },
  );

  it(
    'the answer waits for the record: while the chain head is locked, no answer leaves; on release, answer and ' +
      'record arrive together',
    async () => {
      const blocker = await svc.sql.connect();
      let settled = false;
      let pending: Promise<Awaited<ReturnType<typeof decide>>> | undefined;
      try {
        await blocker.query('begin');
        await blocker.query('lock table audit_head in access exclusive mode');
        pending = decide(svc, admin, { accountId: granted, purpose: 'ad_targeting', categories: ['demographics'] });
        void pending.finally(() => (settled = true));
        // Well within the 600 ms statement timeout.
        await new Promise((r) => setTimeout(r, 250));
        expect(settled).toBe(false);
      } finally {
        await blocker.query('rollback');
        blocker.release();
      }
      const r = await pending!;
      expect(r.status).toBe(200);
      expect(r.body.allow).toBe(true);
      expect(await decisionRecords(svc.databaseUrl, r.body.decisionId)).toHaveLength(1);
    },
  );

  it('every consent event has its consent_event record, without raw IP address or user agent', async () => {
    const id = await createAccount(svc, admin);
    const ip = '203.0.113.77';
    const userAgent = 'Mozilla/5.0 (SubscriberPhone; secret-device-7781)';
    const r = await call(svc.url, 'PUT', `/v1/accounts/${id}/consents`, {
      token: admin,
      headers: { 'x-forwarded-for': ip, 'user-agent': userAgent },
      body: {
        channel: 'point_of_sale',
        actor: { type: 'staff', id: 'clerk-12' },
        verification: 'in_person_id',
        reference: 'STORE-17-TICKET-88',
        noticeVersion: 'v3',
        affirmative: true,
        changes: [
          { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
          { purpose: 'data_sale', category: 'financial', choice: 'revoke' },
          { purpose: 'product_analytics', category: 'other_customer_info', choice: 'opt_out' },
        ],
      },
    });
    expect(r.status).toBe(200);
    const recs = await auditRows(svc.databaseUrl, (x) => x.type === 'consent_event' && x.accountId === id);
    expect(recs).toHaveLength(3);
    const keys = await loadKeys(svc.config.auth, svc.config.env);
    const hmac = (v: string) => createHmac('sha256', keys.evidenceKey).update(v).digest('hex');
    for (const [i, e] of r.body.events.entries()) {
      const rec = recs[i]!;
      expect(rec.outcome).toBeNull();
      expect(rec.data).toEqual({
        eventId: e.eventId,
        kind: e.kind,
        purpose: e.purpose,
        category: e.category,
        channel: 'point_of_sale',
        actorType: 'staff',
        actorId: 'clerk-12',
        clientId: 'test-pipeline',
        verification: 'in_person_id',
        reference: 'STORE-17-TICKET-88',
        noticeVersion: 'v3',
        noticeSha256: svc.config.catalog.noticesByVersion.get('v3')!.sha256,
        occurredAt: e.occurredAt,
        ...(e.expiresAt ? { expiresAt: e.expiresAt } : {}),
        receiptId: r.body.receiptId,
        requestId: r.headers.get('x-request-id'),
        ipHash: hmac(ip),
        userAgentHash: hmac(userAgent),
      });
    }
    expect(recs.map((x) => x.data.kind)).toEqual(['granted', 'declined', 'opted_out']);
    // Nothing about the subscriber beyond the account id: the raw evidence appears nowhere in the log.
    const all = await auditRows(svc.databaseUrl);
    for (const rec of all) {
      expect(rec.content).not.toContain(ip);
      expect(rec.content).not.toContain('secret-device');
    }
  });

  it('POST /v1/accounts writes one staff_action per account it changes, naming it and who acted', async () => {
    const before = await count('staff_action');
    const ids = [uniqueId(), uniqueId(), uniqueId()];
    const token = await svc.token('accounts:write', [], { subject: 'crm-import' });
    const upsert = (accounts: object[]) => call(svc.url, 'POST', '/v1/accounts', { token, body: { accounts } });
    const r = await upsert(ids.map((accountId, i) => ({ accountId, status: i === 2 ? 'closed' : 'active' })));
    expect(r.status).toBe(200);
    // Unchanged (no record), closed, re-opened, billing state changed.
    const second = await upsert([
      { accountId: ids[0], status: 'active' },
      { accountId: ids[1], status: 'closed' },
      { accountId: ids[2], status: 'active' },
    ]);
    expect(second.body).toEqual({ upserted: 3, changed: 2 });
    expect((await upsert([{ accountId: ids[0], status: 'active', billingState: 'overdue' }])).status).toBe(200);
    const staff = (await auditRows(svc.databaseUrl, (x) => x.type === 'staff_action')).slice(before);
    const base = { actor: 'crm-import', action: 'account_changed', serviceState: null };
    expect(staff.map((x) => ({ accountId: x.accountId, outcome: x.outcome, data: x.data }))).toEqual([
      ...ids.map((accountId, i) => ({
        accountId,
        outcome: null,
        data: { ...base, change: 'opened', status: i === 2 ? 'closed' : 'active', billingState: null },
      })),
      { accountId: ids[1], outcome: null, data: { ...base, change: 'closed', status: 'closed', billingState: null } },
      { accountId: ids[2], outcome: null, data: { ...base, change: 'reopened', status: 'active', billingState: null } },
      {
        accountId: ids[0],
        outcome: null,
        data: { ...base, change: 'updated', status: 'active', billingState: 'overdue' },
      },
    ]);
  });
});

describe('when the audit cannot be written: 503, never an allow', () => {
  /** Holds an ACCESS EXCLUSIVE lock on the chain head: every append waits, then hits the statement timeout. */
  async function withHeadLocked<T>(fn: () => Promise<T>): Promise<T> {
    const blocker = await svc.sql.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table audit_head in access exclusive mode');
      return await fn();
    } finally {
      await blocker.query('rollback');
      blocker.release();
    }
  }

  function expectUnavailable(r: { status: number; headers: Headers; body: any }) {
    expect(r.status).toBe(503);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body).toMatchObject({ type: 'urn:optgate:problem:unavailable', status: 503 });
    expect(JSON.stringify(r.body)).not.toMatch(/"allow"|decisionId/);
  }

  it(
    'decisions (single, batch and filter) answer 503 for an account with an active grant, then allow again ' +
      'after the lock is gone',
    async () => {
      const request = { accountId: granted, purpose: 'ad_targeting', categories: ['web_browsing_history'] };
      expect((await decide(svc, admin, request)).body.allow).toBe(true);
      const decisionsBefore = await count('decision');
      await withHeadLocked(async () => {
        const [single, batch] = await Promise.all([
          decide(svc, admin, request),
          call(svc.url, 'POST', '/v1/decisions/batch', {
            token: admin,
            body: { purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds: [granted, granted] },
          }),
        ]);
        expectUnavailable(single);
        expectUnavailable(batch);
        const filtered = await fetch(`${svc.url}/v1/filter?purpose=ad_targeting&schema=clickstream`, {
          method: 'POST',
          headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/x-ndjson' },
          body: `${JSON.stringify({ accountId: granted, url: 'https://example.org/' })}\n`,
        });
        const text = await filtered.text();
        expectUnavailable({ status: filtered.status, headers: filtered.headers, body: JSON.parse(text) });
        expect(text).not.toContain('subscriber data');
      });
      // The failed decisions left no record (and no answer).
      expect(await count('decision')).toBe(decisionsBefore);
      const after = await decide(svc, admin, request);
      expect(after.status).toBe(200);
      expect(after.body.allow).toBe(true);
      expect(await decisionRecords(svc.databaseUrl, after.body.decisionId)).toHaveLength(1);
    },
  );

  it(
    'a consent change whose record cannot be written is not made at all (event and record commit ' + 'together)',
    async () => {
      const eventsBefore = Number(
        (await svc.sql.query('select count(*) from consent_events where account_id = $1', [granted])).rows[0].count,
      );
      await withHeadLocked(async () => {
        const revoke = await putConsents(
          svc,
          admin,
          granted,
          [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'revoke' }],
          { affirmative: false },
        );
        expectUnavailable(revoke);
      });
      expect(
        Number(
          (await svc.sql.query('select count(*) from consent_events where account_id = $1', [granted])).rows[0].count,
        ),
      ).toBe(eventsBefore);
      const state = await call(svc.url, 'GET', `/v1/accounts/${granted}/consents`, { token: admin });
      expect(state.body.consents).toEqual(
        expect.arrayContaining([expect.objectContaining({ category: 'web_browsing_history', state: 'granted' })]),
      );
    },
  );

  it('an account import whose staff_action record cannot be written is not applied', async () => {
    const id = uniqueId();
    await withHeadLocked(async () => {
      expectUnavailable(
        await call(svc.url, 'POST', '/v1/accounts', {
          token: admin,
          body: { accounts: [{ accountId: id, status: 'active' }] },
        }),
      );
    });
    expect((await svc.sql.query('select 1 from accounts where account_id = $1', [id])).rowCount).toBe(0);
  });
});
