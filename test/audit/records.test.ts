import { AuditFormatError, type AuditRecord, parseRecord } from '../../src/audit';
import { auditRows } from '../support/audit';
import { createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { CLI, run } from '../support/processes';

/**
 * Every kind of audit record the service writes (each producer: decisions single, batch and
 * filter; every consent event kind, the expiry sweep's included; account imports, export
 * requests, notice deliveries, and the CLI's tokens and sign-in links) parses with the one public parser. A field
 * renamed in a producer fails here, not silently in the change feed.
 */

let svc: TestService;
let now = Date.now();

beforeAll(async () => {
  svc = await startTestService(
    { RUN_WORKERS: 'true', EXPIRY_SWEEP_INTERVAL_MS: '1000' },
    { clock: () => new Date(now) },
  );
});
afterAll(() => svc.stop());

it('every record kind written by the service parses with parseRecord', async () => {
  const admin = await svc.token(
    'decisions consents:write accounts:write audit:read',
    ['ad_targeting', 'fraud_protection'],
    {
      ttlSeconds: 3600,
    },
  );
  const id = await createAccount(svc, admin);
  const closed = await createAccount(svc, admin, 'closed');
  const grant = (category: string, expiresAt?: string) => ({
    purpose: 'ad_targeting',
    category,
    choice: 'grant' as const,
    ...(expiresAt ? { expiresAt } : {}),
  });
  expect((await putConsents(svc, admin, id, [grant('name'), grant('name')])).status).toBe(200); // granted, renewed
  expect(
    (await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'name', choice: 'revoke' }])).status,
  ).toBe(200);
  const decline = { purpose: 'ad_targeting', category: 'health', choice: 'revoke' as const };
  const optOut = { purpose: 'product_analytics', category: 'other_customer_info', choice: 'opt_out' as const };
  const withdraw = {
    purpose: 'product_analytics',
    category: 'other_customer_info',
    choice: 'withdraw_opt_out' as const,
  };
  expect((await putConsents(svc, admin, id, [decline, optOut, withdraw])).status).toBe(200);
  const soon = new Date(now + 60_000).toISOString();
  expect((await putConsents(svc, admin, id, [grant('web_browsing_history', soon)])).status).toBe(200);

  const body = { purpose: 'ad_targeting', categories: ['web_browsing_history'] };
  await call(svc.url, 'POST', '/v1/decisions', { token: admin, body: { ...body, accountId: id } });
  await call(svc.url, 'POST', '/v1/decisions', { token: admin, body: { ...body, accountId: closed } });
  await call(svc.url, 'POST', '/v1/decisions/batch', { token: admin, body: { ...body, accountIds: [id, 'A-none'] } });
  await fetch(`${svc.url}/v1/filter?purpose=fraud_protection&schema=clickstream`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/x-ndjson' },
    body: `{"accountId":"${id}","ip":"198.51.100.7","lat":43.66}\n`,
  }).then((r) => r.text());
  const exp = await call(svc.url, 'POST', '/v1/audit/exports', {
    token: admin,
    body: { format: 'csv', accountId: id },
  });
  expect(exp.status).toBe(202);

  // The sweep marks the short grant expired once the (injected) clock passes it.
  now += 61_000;
  const expired = async () =>
    (await svc.sql.query("select 1 from consent_events where kind = 'expired' and account_id = $1", [id])).rowCount;
  for (let i = 0; i < 100 && !(await expired()); i++) await new Promise((r) => setTimeout(r, 100));

  // Closing an account ends its opt-ins (lapsed) and is its own account_changed record; so is the sale grant's
  // named recipient.
  const leaving = await createAccount(svc, admin);
  const sale = { purpose: 'data_sale', category: 'name', choice: 'grant' as const, recipients: ['acme-ads'] };
  expect((await putConsents(svc, admin, leaving, [grant('name'), sale])).status).toBe(200);
  const close = await call(svc.url, 'POST', '/v1/accounts', {
    token: admin,
    body: { accounts: [{ accountId: leaving, status: 'closed' }] },
  });
  expect(close.status).toBe(200);
  // A notice given at the point of sale.
  const given = await call(svc.url, 'POST', `/v1/accounts/${id}/notice-deliveries`, {
    token: admin,
    body: { noticeVersion: 'v3', channel: 'point_of_sale', staffId: 'clerk-4' },
  });
  expect(given.status).toBe(201);

  // The CLI's staff actions, against this service's database and keys.
  const env = { DATABASE_URL: svc.databaseUrl, KEYS_DIR: svc.config.auth.keysDir, LOG_LEVEL: 'silent' };
  expect(
    (await run(CLI, ['token', '--sub', 'p', '--scope', 'decisions', '--purposes', 'ad_targeting'], env)).code,
  ).toBe(0);
  expect((await run(CLI, ['portal-link', '--account', id], env)).code).toBe(0);

  // Every record, whatever table holds it, as the public reader gives it back.
  const rows = await auditRows(svc.databaseUrl);
  const records: AuditRecord[] = rows.map((r) => {
    try {
      return parseRecord(r.content);
    } catch (err) {
      throw new Error(`seq ${r.seq}: ${(err as Error).message}\n${r.content}`);
    }
  });
  const kinds = new Set(
    records.map((r) =>
      r.type === 'decision'
        ? `decision:${r.data.endpoint}:${r.outcome}`
        : r.type === 'consent_event'
          ? `consent_event:${r.data.kind}`
          : `staff_action:${r.data.action}`,
    ),
  );
  expect([...kinds].sort()).toEqual(
    [
      'consent_event:declined',
      'consent_event:expired',
      'consent_event:granted',
      'consent_event:lapsed',
      'consent_event:opt_out_withdrawn',
      'consent_event:opted_out',
      'consent_event:renewed',
      'consent_event:revoked',
      'decision:batch:allow',
      'decision:batch:deny',
      'decision:filter:allow',
      'decision:single:allow',
      'decision:single:deny',
      'staff_action:account_changed',
      'staff_action:export_requested',
      'staff_action:notice_delivered',
      'staff_action:portal_link_issued',
      'staff_action:token_issued',
    ].sort(),
  );
}, 60_000);

it('the parser refuses a record whose field was renamed, or whose kind it does not know', () => {
  const record = {
    seq: 1,
    recordedAt: '2026-01-01T00:00:00.000Z',
    type: 'staff_action',
    accountId: null,
    outcome: null,
    data: { action: 'accounts_upserted', actor: 'x', upserted: 1, changed: 1, closed: 0 },
  };
  expect(parseRecord(JSON.stringify(record)).type).toBe('staff_action');
  const renamed = { ...record, data: { ...record.data, changed: undefined, modified: 1 } };
  expect(() => parseRecord(JSON.stringify(renamed))).toThrow(AuditFormatError);
  expect(() => parseRecord(JSON.stringify({ ...record, type: 'webhook' }))).toThrow(AuditFormatError);
  expect(() => parseRecord('{')).toThrow(AuditFormatError);
});
