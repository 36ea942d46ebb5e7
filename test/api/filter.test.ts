import http from 'node:http';
import { auditRows } from '../support/audit';
import { adminToken, createAccount, putConsents, uniqueId } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/** POST /v1/filter: NDJSON in, only the allowed records out, streamed, each judged and audited. */

let svc: TestService;
let admin: string;

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

/** Raw HTTP, to see trailers and a cut stream. */
function filter(query: string, lines: string[], token = admin, contentType = 'application/x-ndjson') {
  return new Promise<{ status: number; body: string; trailers: NodeJS.Dict<string>; aborted: boolean; type?: string }>(
    (resolve, reject) => {
      const req = http.request(
        `${svc.url}/v1/filter?${query}`,
        { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': contentType } },
        (res) => {
          let body = '';
          let aborted = false;
          res.setEncoding('utf8');
          res.on('data', (d) => (body += d));
          res.on('aborted', () => (aborted = true));
          res.on('error', () => (aborted = true));
          res.on('close', () =>
            resolve({
              status: res.statusCode!,
              body,
              trailers: res.trailers,
              aborted: aborted || !res.complete,
              type: res.headers['content-type'],
            }),
          );
        },
      );
      req.on('error', reject);
      for (const l of lines) req.write(`${l}\n`);
      req.end();
    },
  );
}

it('passes on only the allowed records, unchanged and in order, with counts as trailers', async () => {
  const yes = await createAccount(svc, admin);
  const no = await createAccount(svc, admin);
  await putConsents(svc, admin, yes, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
  const lines = [
    JSON.stringify({ accountId: yes, url: 'https://example.org/a', n: 1 }),
    JSON.stringify({ accountId: no, url: 'https://example.org/b' }),
    JSON.stringify({ accountId: uniqueId('ghost'), url: 'x' }),
    'not json',
    JSON.stringify({ other: yes }),
    '',
    JSON.stringify({ accountId: yes, url: 'https://example.org/c', n: 2 }),
  ];
  const r = await filter('purpose=ad_targeting&categories=web_browsing_history', lines);
  expect(r.status).toBe(200);
  expect(r.type).toMatch(/application\/x-ndjson/);
  expect(r.body).toBe(`${lines[0]}\n${lines[6]}\n`);
  expect(r.trailers).toMatchObject({ 'x-optgate-received': '6', 'x-optgate-allowed': '2', 'x-optgate-invalid': '2' });
  // Every account judged has its audit record.
  const rows = await auditRows(svc.databaseUrl, (x) => x.type === 'decision' && x.data.endpoint === 'filter');
  expect(rows.map((x) => [x.accountId, x.outcome])).toEqual([
    [yes, 'allow'],
    [no, 'deny'],
    [expect.stringMatching(/^ghost-/), 'deny'],
    [yes, 'allow'],
  ]);
});

it('streams thousands of records with a custom account field', async () => {
  const id = await createAccount(svc, admin);
  const lines = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ subscriber: i % 2 ? id : 'unknown-1', i }));
  const r = await filter('purpose=billing&categories=billing_info&accountField=subscriber', lines);
  expect(r.status).toBe(200);
  const out = r.body.trim().split('\n');
  expect(out).toHaveLength(2500);
  expect(out.every((l) => JSON.parse(l).subscriber === id)).toBe(true);
});

it('checks the request before streaming: 422, 403, 415', async () => {
  expect((await filter('purpose=curiosity&categories=name', [])).status).toBe(422);
  expect((await filter('purpose=ad_targeting', [])).status).toBe(422);
  expect(
    (await filter('purpose=fraud_protection&categories=name', [], await svc.token('decisions', ['ad_targeting'])))
      .status,
  ).toBe(403);
  expect((await filter('purpose=ad_targeting&categories=name', [], admin, 'text/csv')).status).toBe(415);
});

it('answers a clean 503 problem when the store fails before the first record', async () => {
  const id = await createAccount(svc, admin);
  const blocker = await svc.sql.connect();
  try {
    await blocker.query('begin');
    await blocker.query('lock table consent_state in access exclusive mode');
    const r = await filter('purpose=product_analytics&categories=other_customer_info', [
      JSON.stringify({ accountId: id }),
    ]);
    // Nothing had been written yet: a clean 503 problem.
    expect(r.status).toBe(503);
    expect(r.body).not.toContain(id);
  } finally {
    await blocker.query('rollback');
    blocker.release();
  }
});

it('cuts the stream when the store fails mid-way: a partial answer never looks complete', async () => {
  const id = await createAccount(svc, admin);
  const blocker = await svc.sql.connect();
  const result = await new Promise<{ body: string; complete: boolean; trailers: NodeJS.Dict<string> }>(
    (resolve, reject) => {
      const req = http.request(
        `${svc.url}/v1/filter?purpose=product_analytics&categories=other_customer_info`,
        { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/x-ndjson' } },
        (res) => {
          let body = '';
          let blocked = false;
          res.setEncoding('utf8');
          res.on('data', async (d) => {
            body += d;
            if (!blocked && body.includes('"n":1')) {
              blocked = true;
              // The first record is through; the store now stops answering before the second can be recorded (its
              // account is in the cache by now: it is the audit write that cannot happen).
              await blocker.query('begin');
              await blocker.query('select * from audit_head for update');
              req.end(`${JSON.stringify({ accountId: id, n: 2 })}\n`);
            }
          });
          res.on('error', () => undefined);
          res.on('close', () => resolve({ body, complete: res.complete, trailers: res.trailers }));
        },
      );
      req.on('error', reject);
      req.write(`${JSON.stringify({ accountId: id, n: 1 })}\n`);
    },
  );
  await blocker.query('rollback');
  blocker.release();
  expect(result.body).toBe(`${JSON.stringify({ accountId: id, n: 1 })}\n`);
  expect(result.complete).toBe(false);
  expect(result.trailers['x-optgate-received']).toBeUndefined();
});
