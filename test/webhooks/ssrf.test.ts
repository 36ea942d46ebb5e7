import { adminToken } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Registration refuses receivers that would make the service a request forger. Run as NODE_ENV=test (not
 * development) with the allow list off, so that the rules apply as in production.
 */

let svc: TestService;
let admin: string;

beforeAll(async () => {
  svc = await startTestService({ NODE_ENV: 'test', WEBHOOK_ALLOWED_HOSTS: '' });
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

const register = (url: string) =>
  call(svc.url, 'POST', '/v1/webhooks', { token: admin, body: { url, events: ['consent.revoked'] } });

it.each([
  'http://127.0.0.1:8080/hook',
  'http://localhost/hook',
  'http://[::1]/hook',
  'http://[::ffff:127.0.0.1]/hook',
  'http://169.254.169.254/latest/meta-data',
  'http://10.0.0.1/hook',
  'http://192.168.1.10/hook',
  'http://100.64.0.1/hook',
  'http://0.0.0.0/hook',
  'http://[fe80::1]/hook',
  'http://[fd00::1]/hook',
  'ftp://93.184.216.34/hook',
  'http://user:password@93.184.216.34/hook',
  'not a url',
])('refuses %s: 422 naming url', async (url) => {
  const r = await register(url);
  expect(r.status).toBe(422);
  expect(r.headers.get('content-type')).toMatch(/problem\+json/);
  expect(r.body.errors).toEqual([{ path: 'url', message: expect.any(String) }]);
  expect(JSON.stringify(r.body)).not.toContain('password');
});

it('accepts a public address', async () => {
  const r = await register('https://93.184.216.34/hook');
  expect(r.status).toBe(201);
  expect(r.body).toMatchObject({ url: 'https://93.184.216.34/hook', events: ['consent.revoked'] });
});

it('refuses unknown events and needs the webhooks:write scope', async () => {
  const r = await call(svc.url, 'POST', '/v1/webhooks', {
    token: admin,
    body: { url: 'https://93.184.216.34/hook', events: ['consent.everything'] },
  });
  expect(r.status).toBe(422);
  const reader = await svc.token('decisions');
  expect((await call(svc.url, 'POST', '/v1/webhooks', { token: reader, body: {} })).status).toBe(403);
});
