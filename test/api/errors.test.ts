import { adminToken, createAccount } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/** Bad input is a 4xx problem+json with the request id: never a 500, never an allow. */

let svc: TestService;
let admin: string;
let accountId: string;

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
  accountId = await createAccount(svc, admin);
});
afterAll(() => svc.stop());

function expectProblem(r: { status: number; headers: Headers; body: any }, status: number, type: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({
    type: `urn:optgate:problem:${type}`,
    status,
    title: expect.any(String),
    detail: expect.any(String),
  });
  expect(r.body.requestId).toBe(r.headers.get('x-request-id'));
  expect(r.body.allow).toBeUndefined();
}

it("404 for an unknown path, with the caller's request id", async () => {
  const r = await call(svc.url, 'GET', '/v1/nothing-here', { headers: { 'x-request-id': 'trace-123' } });
  expectProblem(r, 404, 'not-found');
  expect(r.body.requestId).toBe('trace-123');
});

it('malformed JSON is 400', async () => {
  const r = await call(svc.url, 'POST', '/v1/decisions', {
    token: admin,
    raw: '{"accountId": ',
    headers: { 'content-type': 'application/json' },
  });
  expectProblem(r, 400, 'bad-request');
});

it('a body that is not JSON is 415', async () => {
  const r = await call(svc.url, 'POST', '/v1/decisions', {
    token: admin,
    raw: 'accountId=x',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  expectProblem(r, 415, 'unsupported-media-type');
});

it('an oversized body is 413', async () => {
  const r = await call(svc.url, 'POST', '/v1/decisions', {
    token: admin,
    body: { accountId, purpose: 'fraud_protection', categories: ['ip_addresses'], reference: 'x'.repeat(100_000) },
  });
  expectProblem(r, 413, 'payload-too-large');
  const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
    token: admin,
    raw: `{"accountIds":["${'a'.repeat(3_000_000)}"]}`,
    headers: { 'content-type': 'application/json' },
  });
  expectProblem(batch, 413, 'payload-too-large');
});

it.each([
  ['a JSON array', []],
  ['a JSON string', 'hello'],
  ['null', null],
  ['categories as a string', { accountId: 'A-1', purpose: 'fraud_protection', categories: 'ip_addresses' }],
  ['a numeric account id', { accountId: 42, purpose: 'fraud_protection', categories: ['ip_addresses'] }],
  ['an object as purpose', { accountId: 'A-1', purpose: { $ne: null }, categories: ['ip_addresses'] }],
  [
    'a prototype-pollution key',
    JSON.parse(
      '{"__proto__": {"allow": true}, "accountId": "x", "purpose": "fraud_protection", "categories": ["ip_addresses"]}',
    ),
  ],
])('%s is 4xx', async (_label, body) => {
  const r = await call(svc.url, 'POST', '/v1/decisions', {
    token: admin,
    raw: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  expect(r.status).toBeGreaterThanOrEqual(400);
  expect(r.status).toBeLessThan(500);
  expect(r.body.allow).toBeUndefined();
});

it('an unsupported method on a known path is a problem too', async () => {
  const r = await call(svc.url, 'DELETE', '/v1/decisions', { token: admin });
  expect(r.status).toBe(404);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
});

it('errors never echo the account id', async () => {
  const secretish = 'SUBSCRIBER-9f8e7d';
  const r = await call(svc.url, 'PUT', `/v1/accounts/${secretish}/consents`, {
    token: admin,
    body: {
      channel: 'api',
      actor: 'subscriber',
      noticeVersion: 'v3',
      affirmative: true,
      changes: [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }],
    },
  });
  expect(r.status).toBe(404);
  expect(JSON.stringify(r.body)).not.toContain(secretish);
});
