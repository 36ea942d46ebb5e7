import { createHash } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { parseRecord } from '../../src/audit';
import { NoticeService, noticeRoutes } from '../../src/notices';
import { loadCatalog } from '../../src/platform/config/catalog';
import { RUNTIME_ROLE } from '../../src/platform/db/roles';
import { AppError } from '../../src/platform/errors';
import { auditRows } from '../support/audit';
import { adminToken, createAccount, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { ROOT } from '../support/processes';

/**
 * The notice at the point of sale: one version's text in the representation a channel can show (JSON, the exact
 * Markdown, rendered HTML), and the record that it was given to a subscriber, with its audit record.
 */

let svc: TestService;
let admin: string;

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const v3 = () => svc.config.catalog.noticesByVersion.get('v3')!;

/** The body matches the schema the route documents for its status. */
function expectDocumented(spec: { responses: Record<number, { schema?: { safeParse(v: unknown): any } }> }, r: any) {
  const parsed = spec.responses[r.status]!.schema!.safeParse(r.body);
  expect(parsed.error?.issues ?? []).toEqual([]);
}

describe('GET /v1/notices/:version, by Accept', () => {
  const get = (accept?: string, version = 'v3') =>
    fetch(`${svc.url}/v1/notices/${version}`, { headers: accept ? { accept } : {} });

  it('JSON by default and for application/json, */* and application/*', async () => {
    for (const accept of [undefined, 'application/json', '*/*', 'application/*', 'text/html;q=0.1, */*']) {
      const r = await get(accept);
      expect({ accept, status: r.status, type: r.headers.get('content-type') }).toEqual({
        accept,
        status: 200,
        type: 'application/json; charset=utf-8',
      });
      expect(r.headers.get('vary')).toMatch(/\bAccept\b/i);
      const body = await r.json();
      expect(body).toMatchObject({ version: 'v3', sha256: v3().sha256, text: v3().text });
      expectDocumented(noticeRoutes.get, { status: 200, body });
    }
  });

  it('text/plain: the Markdown text exactly, whose SHA-256 is the notice sha256', async () => {
    const listed = (await call(svc.url, 'GET', '/v1/notices')).body.versions as { version: string; sha256: string }[];
    for (const { version, sha256: hash } of listed) {
      const r = await get('text/plain', version);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      expect(r.headers.get('vary')).toMatch(/\bAccept\b/i);
      const bytes = new Uint8Array(await r.arrayBuffer());
      expect(sha256(bytes)).toBe(hash);
      expect(Number(r.headers.get('content-length'))).toBe(bytes.length);
    }
    // The preferred of several, by quality, then by the order named; a wildcard takes the first it covers.
    for (const accept of ['text/html;q=0.5, text/plain', 'text/plain, text/html', 'text/*']) {
      const preferred = await get(accept);
      expect({ accept, type: preferred.headers.get('content-type') }).toEqual({
        accept,
        type: 'text/plain; charset=utf-8',
      });
      expect(sha256(await preferred.text())).toBe(v3().sha256);
    }
  });

  it('text/html: the text rendered, as one article carrying the version, its date and hash', async () => {
    const r = await get('text/html');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('vary')).toMatch(/\bAccept\b/i);
    // An API answer: nothing in it may load or run.
    expect(r.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await r.text();
    expect(html).toMatch(
      new RegExp(
        `^<article class="optgate-notice" data-version="v3" data-effective-at="2025-09-01T00:00:00.000Z" ` +
          `data-sha256="${v3().sha256}">\n`,
      ),
    );
    expect(html).toContain('<h1>Your privacy choices</h1>');
    expect(html).toContain('<strong>What this covers.</strong>');
    expect(html.trimEnd()).toMatch(/<\/article>$/);
    expect(html).not.toMatch(/<html|<script|\sstyle=/i);
  });

  it('anything else is 406 problem+json; an unknown version stays 404', async () => {
    for (const accept of ['application/xml', 'image/png', 'application/problem+json', 'text/csv']) {
      const r = await call(svc.url, 'GET', '/v1/notices/v3', { headers: { accept } });
      expect({ accept, status: r.status }).toEqual({ accept, status: 406 });
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.headers.get('vary')).toMatch(/\bAccept\b/i);
      expect(r.body).toMatchObject({
        type: 'urn:optgate:problem:not-acceptable',
        title: 'Not acceptable',
        status: 406,
        detail: 'A notice is available as application/json, text/plain, text/html.',
        requestId: r.headers.get('x-request-id'),
      });
    }
    const unknown = await call(svc.url, 'GET', '/v1/notices/v99', { headers: { accept: 'text/plain' } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.type).toBe('urn:optgate:problem:not-found');
  });

  it('/openapi.json describes the three representations, Vary and the 406', async () => {
    const op = (await call(svc.url, 'GET', '/openapi.json')).body.paths['/v1/notices/{version}'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['application/json', 'text/plain', 'text/html']);
    expect(op.responses['200'].headers.Vary).toBeDefined();
    expect(op.responses['406']).toEqual({ $ref: '#/components/responses/Problem406' });
    expect(op.responses['404']).toEqual({ $ref: '#/components/responses/Problem404' });
  });
});

describe('POST /v1/accounts/:accountId/notice-deliveries', () => {
  const deliver = (accountId: string, body: unknown, token = admin) =>
    call(svc.url, 'POST', `/v1/accounts/${accountId}/notice-deliveries`, { token, body });
  const count = async (accountId: string) =>
    (await svc.sql.query('select count(*)::int as n from notice_deliveries where account_id = $1', [accountId])).rows[0]
      .n as number;

  it('records a delivery at the point of sale, with its audit record in the same transaction', async () => {
    const id = await createAccount(svc, admin);
    const before = Date.now();
    const r = await deliver(id, { noticeVersion: 'v3', channel: 'point_of_sale', staffId: 'store-12/clerk-4' });
    expect(r.status).toBe(201);
    expectDocumented(noticeRoutes.recordDelivery, r);
    expect(r.body).toEqual({
      deliveryId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      accountId: id,
      noticeVersion: 'v3',
      noticeSha256: v3().sha256,
      channel: 'point_of_sale',
      staffId: 'store-12/clerk-4',
      clientId: 'test-pipeline',
      deliveredAt: r.body.recordedAt,
      recordedAt: expect.any(String),
    });
    expect(Date.parse(r.body.recordedAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(r.body.recordedAt)).toBeLessThanOrEqual(Date.now() + 1000);

    const records = await auditRows(
      svc.databaseUrl,
      (row) => row.type === 'staff_action' && row.data?.deliveryId === r.body.deliveryId,
    );
    expect(records).toHaveLength(1);
    const record = parseRecord(records[0]!.content);
    expect(record).toMatchObject({ type: 'staff_action', accountId: id, outcome: null });
    expect(record.data).toEqual({
      action: 'notice_delivered',
      actor: 'test-pipeline',
      deliveryId: r.body.deliveryId,
      noticeVersion: 'v3',
      noticeSha256: v3().sha256,
      channel: 'point_of_sale',
      staffId: 'store-12/clerk-4',
      deliveredAt: r.body.deliveredAt,
      requestId: r.headers.get('x-request-id'),
    });
    expect(records[0]!.recordedAt.toISOString()).toBe(r.body.recordedAt);
  });

  it('takes an earlier time with an offset, and no staff for mail, e-mail and api; an older version too', async () => {
    const id = await createAccount(svc, admin);
    const a = await deliver(id, { noticeVersion: 'v3', channel: 'email', deliveredAt: '2026-01-05T09:30:00+02:00' });
    expect(a.status).toBe(201);
    expect(a.body.deliveredAt).toBe('2026-01-05T07:30:00.000Z');
    expect(a.body.staffId).toBeUndefined();
    const b = await deliver(id, { noticeVersion: 'v2', channel: 'mail', deliveredAt: '2024-02-01T00:00:00Z' });
    expect(b.status).toBe(201);
    expect(b.body.noticeSha256).toBe(svc.config.catalog.noticesByVersion.get('v2')!.sha256);
    expect((await deliver(id, { noticeVersion: 'v3', channel: 'api' })).status).toBe(201);
    expect((await deliver(id, { noticeVersion: 'v3', channel: 'call_center', staffId: 'agent-7' })).status).toBe(201);
    // A closed account still takes the record of what it was given: it is a fact, not a consent.
    const closed = await createAccount(svc, admin, 'closed');
    expect((await deliver(closed, { noticeVersion: 'v3', channel: 'mail' })).status).toBe(201);
  });

  it.each([
    ['an unknown notice version', { noticeVersion: 'v99' }, [['noticeVersion', /unknown notice version/]]],
    ['a point-of-sale delivery without staff', { staffId: undefined }, [['staffId', /required for point_of_sale/]]],
    [
      'a call-centre delivery without staff',
      { channel: 'call_center', staffId: undefined },
      [['staffId', /required for call_center/]],
    ],
    ['a time in the future', { deliveredAt: '2999-01-01T00:00:00Z' }, [['deliveredAt', /future/]]],
    [
      'a time before the version took effect',
      { deliveredAt: '2025-08-31T23:59:59Z' },
      [['deliveredAt', /before v3 took effect \(2025-09-01T00:00:00.000Z\)/]],
    ],
    ['a time without an offset', { deliveredAt: '2026-01-05T09:30:00' }, [['deliveredAt', /./]]],
    ['an unknown channel', { channel: 'carrier_pigeon' }, [['channel', /./]]],
    ['the portal as a channel', { channel: 'portal' }, [['channel', /./]]],
    ['an empty staff id', { staffId: '' }, [['staffId', /./]]],
    ['a staff id over 128 characters', { staffId: 'x'.repeat(129) }, [['staffId', /./]]],
    ['no version', { noticeVersion: undefined }, [['noticeVersion', /./]]],
    [
      'several problems at once',
      { noticeVersion: 'v99', staffId: undefined },
      [
        ['noticeVersion', /unknown/],
        ['staffId', /required/],
      ],
    ],
  ])('%s: 422 naming the field, nothing recorded', async (_what, change, expected) => {
    const id = await createAccount(svc, admin);
    const body = { noticeVersion: 'v3', channel: 'point_of_sale', staffId: 'clerk-4', ...change };
    const r = await deliver(id, body);
    expect(r.status).toBe(422);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.body.errors).toEqual(
      (expected as [string, RegExp][]).map(([p, m]) => ({ path: p, message: expect.stringMatching(m) })),
    );
    expect(await count(id)).toBe(0);
  });

  it('an unknown field is refused; an unknown account is 404; a token needs consents:write', async () => {
    const id = await createAccount(svc, admin);
    const body = { noticeVersion: 'v3', channel: 'mail' };
    expect((await deliver(id, { ...body, subscriberName: 'x' })).status).toBe(422);
    const unknown = await deliver(uniqueId(), body);
    expect(unknown.status).toBe(404);
    expect(unknown.body.type).toBe('urn:optgate:problem:not-found');
    expect((await call(svc.url, 'POST', `/v1/accounts/${id}/notice-deliveries`, { body })).status).toBe(401);
    for (const scope of ['decisions', 'audit:read'])
      expect((await deliver(id, body, await svc.token(scope))).status).toBe(403);
    expect((await deliver(id, body, await svc.token('consents:write'))).status).toBe(201);
  });

  it('a version not in effect yet is refused (the service at an earlier time)', async () => {
    const catalog = loadCatalog(path.join(ROOT, 'config'));
    const early = new NoticeService({
      db: undefined as never,
      catalog,
      clock: () => new Date('2025-06-01T00:00:00Z'),
      accounts: undefined as never,
    });
    const attempt = early.recordDelivery(
      'A-1',
      { noticeVersion: 'v3', channel: 'mail' },
      { clientId: 'c', requestId: 'r' },
    );
    await expect(attempt).rejects.toThrow(AppError);
    await expect(attempt).rejects.toMatchObject({
      status: 422,
      errors: [{ path: 'noticeVersion', message: 'this notice version is not in effect yet' }],
    });
  });
});

describe('GET /v1/accounts/:accountId/notice-deliveries', () => {
  it('newest first, cursor-paginated, for decisions or consents:write', async () => {
    const id = await createAccount(svc, admin);
    const versions = ['v1', 'v2', 'v3'];
    const ids: string[] = [];
    for (const noticeVersion of versions) {
      const r = await call(svc.url, 'POST', `/v1/accounts/${id}/notice-deliveries`, {
        token: admin,
        body: { noticeVersion, channel: 'point_of_sale', staffId: 'clerk-4' },
      });
      expect(r.status).toBe(201);
      ids.push(r.body.deliveryId);
    }
    const reader = await svc.token('decisions');
    const all = await call(svc.url, 'GET', `/v1/accounts/${id}/notice-deliveries`, { token: reader });
    expect(all.status).toBe(200);
    expectDocumented(noticeRoutes.listDeliveries, all);
    expect(all.body.accountId).toBe(id);
    expect(all.body.deliveries.map((d: { deliveryId: string }) => d.deliveryId)).toEqual([...ids].reverse());
    expect(all.body.deliveries.map((d: { noticeVersion: string }) => d.noticeVersion)).toEqual(['v3', 'v2', 'v1']);
    expect(all.body.nextCursor).toBeNull();

    const token = await svc.token('consents:write');
    const first = await call(svc.url, 'GET', `/v1/accounts/${id}/notice-deliveries?limit=2`, { token });
    expect(first.body.deliveries.map((d: { deliveryId: string }) => d.deliveryId)).toEqual([ids[2], ids[1]]);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await call(
      svc.url,
      'GET',
      `/v1/accounts/${id}/notice-deliveries?limit=2&cursor=${first.body.nextCursor}`,
      { token },
    );
    expect(second.body.deliveries.map((d: { deliveryId: string }) => d.deliveryId)).toEqual([ids[0]]);
    expect(second.body.nextCursor).toBeNull();

    const bad = await call(svc.url, 'GET', `/v1/accounts/${id}/notice-deliveries?cursor=nonsense`, { token });
    expect(bad.status).toBe(422);
    expect(bad.body.errors).toEqual([{ path: 'cursor', message: 'invalid cursor' }]);
    expect((await call(svc.url, 'GET', `/v1/accounts/${uniqueId()}/notice-deliveries`, { token })).status).toBe(404);
    expect((await call(svc.url, 'GET', `/v1/accounts/${id}/notice-deliveries`)).status).toBe(401);
    const auditor = await svc.token('audit:read');
    expect((await call(svc.url, 'GET', `/v1/accounts/${id}/notice-deliveries`, { token: auditor })).status).toBe(403);
    const other = await createAccount(svc, admin);
    const none = await call(svc.url, 'GET', `/v1/accounts/${other}/notice-deliveries`, { token });
    expect(none.body).toEqual({ accountId: other, deliveries: [], nextCursor: null });
  });
});

it('the runtime role may append deliveries, never change or delete them', async () => {
  const id = await createAccount(svc, admin);
  await call(svc.url, 'POST', `/v1/accounts/${id}/notice-deliveries`, {
    token: admin,
    body: { noticeVersion: 'v3', channel: 'mail' },
  });
  const url = new URL(svc.databaseUrl);
  url.username = RUNTIME_ROLE;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    await expect(client.query(`update notice_deliveries set staff_id = 'someone'`)).rejects.toThrow(
      /permission denied/,
    );
    await expect(client.query('delete from notice_deliveries')).rejects.toThrow(/permission denied/);
    await expect(client.query('truncate notice_deliveries')).rejects.toThrow(/permission denied/);
  } finally {
    await client.end();
  }
  // Not even the owner rewrites one: the triggers refuse it.
  await expect(svc.sql.query('delete from notice_deliveries where account_id = $1', [id])).rejects.toThrow(
    /append-only/,
  );
});
