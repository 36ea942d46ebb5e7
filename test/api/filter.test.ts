import http from 'node:http';
import { type AuditRow, auditRows, chainProblems, verifyDb } from '../support/audit';
import { adminToken, createAccount, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/** POST /v1/filter: NDJSON in, only the allowed records out, streamed, each judged and audited. */

let svc: TestService;
let admin: string;

beforeAll(async () => {
  // Both modes: judged by a record schema, and (turned on here) by the categories a caller declares.
  svc = await startTestService({ FILTER_ALLOW_DECLARED: 'true' });
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

interface Filtered {
  status: number;
  body: string;
  bytes: Buffer;
  trailers: NodeJS.Dict<string>;
  aborted: boolean;
  type?: string;
}

/** Raw HTTP, to see trailers, a cut stream and the bytes as sent: lines, or the body in the pieces given. */
function filter(
  query: string,
  lines: string[] | { pieces: Buffer[] },
  token = admin,
  contentType = 'application/x-ndjson',
) {
  return new Promise<Filtered>((resolve, reject) => {
    const req = http.request(
      `${svc.url}/v1/filter?${query}`,
      { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': contentType } },
      (res) => {
        const chunks: Buffer[] = [];
        let aborted = false;
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('aborted', () => (aborted = true));
        res.on('error', () => (aborted = true));
        res.on('close', () => {
          const bytes = Buffer.concat(chunks);
          resolve({
            status: res.statusCode!,
            body: bytes.toString('utf8'),
            bytes,
            trailers: res.trailers,
            aborted: aborted || !res.complete,
            type: res.headers['content-type'],
          });
        });
      },
    );
    req.on('error', reject);
    if (Array.isArray(lines)) {
      for (const l of lines) req.write(`${l}\n`);
      req.end();
    } else {
      // Each piece on its own, after the previous one has been flushed to the socket.
      const { pieces } = lines;
      const next = (i: number) => {
        if (i === pieces.length) req.end();
        else req.write(pieces[i]!, () => setTimeout(() => next(i + 1), 5));
      };
      next(0);
    }
  });
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
  expect(r.trailers).toMatchObject({
    'x-optgate-received': '6',
    'x-optgate-allowed': '2',
    'x-optgate-invalid': '2',
    'x-optgate-redacted': '0',
  });
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

/** The filter's audit records of one request, in order (the request id is in each). */
async function filterRecordsOf(requestId: string): Promise<AuditRow[]> {
  return auditRows(svc.databaseUrl, (x) => x.type === 'decision' && x.data.requestId === requestId);
}
const requestIdOf = async (accountId: string) =>
  (await auditRows(svc.databaseUrl, (x) => x.type === 'decision' && x.accountId === accountId)).at(-1)!.data.requestId;

describe('judged by a record schema (schema=clickstream)', () => {
  const CLICKSTREAM = [
    'web_browsing_history',
    'app_usage_history',
    'ip_addresses',
    'precise_geolocation',
    'device_identifiers',
    'other_customer_info',
  ];
  const saleQuery = 'purpose=data_sale&recipient=acme-ads';

  it('catches the SSN and the health URL of the issue that a declared category let through', async () => {
    const id = await createAccount(svc, admin);
    const line = JSON.stringify({
      accountId: id,
      plan: 'gold',
      ssn: '078-05-1120',
      visited: 'https://clinic.example/hiv',
    });
    // Declared, where an operator turned it on (FILTER_ALLOW_DECLARED): only the account is read and the record
    // passes whole. By default that is refused (below).
    const declared = await filter(`${saleQuery}&categories=other_customer_info`, [line]);
    expect(declared.body).toBe(`${line}\n`);
    // Judged by its fields: the SSN and the URL are unclassified, so they go; plan (other_customer_info) may be sold.
    const redacted = await filter(`${saleQuery}&schema=clickstream`, [line]);
    expect(redacted.status).toBe(200);
    expect(redacted.body).toBe(`{"accountId":"${id}","plan":"gold"}\n`);
    expect(redacted.trailers).toMatchObject({ 'x-optgate-allowed': '1', 'x-optgate-redacted': '1' });
    const dropped = await filter(`${saleQuery}&schema=clickstream&mode=drop`, [line]);
    expect(dropped.body).toBe('');
    expect(dropped.trailers).toMatchObject({ 'x-optgate-received': '1', 'x-optgate-allowed': '0' });
  });

  it('redact: removes exactly the fields that may not be used; records with none pass byte for byte', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
    const clean = `{"ts":1767225600123, "url":"https://example.org/a","accountId":"${id}"}`;
    const mixed = JSON.stringify({
      url: 'https://example.org/b',
      lat: 43.6591,
      lon: -70.2568,
      ts: 1767225600456,
      ip: '192.0.2.7',
      accountId: id,
      referrer: 'https://unclassified.example/',
    });
    const nothing = JSON.stringify({ accountId: id, lat: 43.6, deviceId: 'd-1', ts: 1 });
    const r = await filter('purpose=ad_targeting&schema=clickstream', [clean, mixed, nothing]);
    expect(r.status).toBe(200);
    expect(r.body).toBe(`${clean}\n{"accountId":"${id}","ts":1767225600456,"url":"https://example.org/b"}\n`);
    expect(r.trailers).toMatchObject({
      'x-optgate-received': '3',
      'x-optgate-allowed': '2',
      'x-optgate-invalid': '0',
      'x-optgate-redacted': '1',
    });
    // One decision record per record judged, over every category the schema maps, each listing what it passed on.
    const rows = await filterRecordsOf(await requestIdOf(id));
    expect(rows.map((x) => [x.accountId, x.outcome, x.data.passed])).toEqual([
      [id, 'deny', ['web_browsing_history']],
      [id, 'deny', ['web_browsing_history']],
      [id, 'deny', []],
    ]);
    expect(rows[0]!.data.categories).toEqual(CLICKSTREAM);
    // As the audit API gives them out.
    const events = await call(svc.url, 'GET', `/v1/audit/events?accountId=${id}&type=decision`, { token: admin });
    expect(events.body.events.map((e: { data: { passed?: string[] } }) => e.data.passed)).toEqual(
      rows.map((x) => x.data.passed),
    );
    expect(
      rows[0]!.data.results.filter((x: { allow: boolean }) => x.allow).map((x: { category: string }) => x.category),
    ).toEqual(['web_browsing_history', 'other_customer_info']);
  });

  it('drop: only the records that lose nothing pass, byte for byte', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
      { purpose: 'ad_targeting', category: 'precise_geolocation', choice: 'grant' },
    ]);
    const lines = [
      JSON.stringify({ accountId: id, url: 'https://example.org/', lat: 43.6591, lon: -70.2568, ts: 1 }),
      JSON.stringify({ accountId: id, url: 'https://example.org/', app: 'maps' }),
      JSON.stringify({ accountId: id, url: 'https://example.org/', extra: 1 }),
      JSON.stringify({ accountId: uniqueId('ghost'), url: 'https://example.org/' }),
    ];
    const r = await filter('purpose=ad_targeting&schema=clickstream&mode=drop', lines);
    expect(r.body).toBe(`${lines[0]}\n`);
    expect(r.trailers).toMatchObject({
      'x-optgate-received': '4',
      'x-optgate-allowed': '1',
      'x-optgate-redacted': '0',
    });
    const rows = await filterRecordsOf(await requestIdOf(id));
    expect(rows.map((x) => x.data.passed)).toEqual([['web_browsing_history', 'precise_geolocation'], [], [], []]);
  });

  it('judges a pipeline bound to the schema by it, without asking; it may not judge otherwise', async () => {
    const pipeline = await svc.token('decisions', ['data_sale'], { subject: 'clickstream-pipeline' });
    const id = await createAccount(svc, admin);
    const line = JSON.stringify({ accountId: id, plan: 'gold', ssn: '078-05-1120' });
    const r = await filter(saleQuery, [line], pipeline);
    expect(r.body).toBe(`{"accountId":"${id}","plan":"gold"}\n`);
    expect((await filter(`${saleQuery}&categories=other_customer_info`, [line], pipeline)).status).toBe(422);
  });

  it('checks the request before streaming: 422 naming the parameter', async () => {
    const problem = async (query: string) => {
      const r = await filter(query, []);
      expect(r.status).toBe(422);
      return JSON.parse(r.body).errors.map((e: { path: string }) => e.path);
    };
    expect(await problem('purpose=ad_targeting&schema=nope')).toEqual(['schema']);
    expect(await problem('purpose=ad_targeting&schema=clickstream&categories=name')).toEqual(['categories']);
    expect(await problem('purpose=ad_targeting&schema=clickstream&accountField=id')).toEqual(['accountField']);
    expect(await problem('purpose=ad_targeting&categories=name&mode=drop')).toEqual(['mode']);
    expect(await problem('purpose=ad_targeting&schema=clickstream&mode=mask')).toEqual(['mode']);
    expect(await problem('purpose=ad_targeting')).toEqual(['categories']);
    const pipeline = await svc.token('decisions', ['ad_targeting'], { subject: 'clickstream-pipeline' });
    expect((await filter('purpose=ad_targeting&schema=other', [], pipeline)).status).toBe(422);
  });
});

it('by default, records are judged by a schema or not at all: declared categories are refused (422)', async () => {
  const strict = await startTestService();
  try {
    const token = await adminToken(strict);
    const id = await createAccount(strict, token);
    const r = await fetch(`${strict.url}/v1/filter?purpose=product_analytics&categories=other_customer_info`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
      body: `${JSON.stringify({ accountId: id, plan: 'gold', ssn: '078-05-1120' })}\n`,
    });
    expect(r.status).toBe(422);
    const problem = (await r.json()) as { errors: { path: string; message: string }[] };
    expect(problem.errors).toEqual([{ path: 'schema', message: expect.stringMatching(/name a record schema/) }]);
    const judged = await fetch(`${strict.url}/v1/filter?purpose=product_analytics&schema=clickstream`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
      body: `${JSON.stringify({ accountId: id, plan: 'gold', ssn: '078-05-1120' })}\n`,
    });
    expect(judged.status).toBe(200);
    expect(await judged.text()).toBe(`{"accountId":"${id}","plan":"gold"}\n`);
  } finally {
    await strict.stop();
  }
});

describe('UTF-8 across reads', () => {
  it('returns records with é€😀 split between reads byte for byte (five records of 180 KB)', async () => {
    const id = await createAccount(svc, admin);
    const text = 'é€😀'.repeat(18_000);
    const lines = Array.from({ length: 5 }, (_, i) => JSON.stringify({ accountId: id, i, note: text }));
    const r = await filter('purpose=billing&categories=billing_info', lines);
    expect(r.status).toBe(200);
    expect(r.body).not.toContain('\uFFFD');
    expect(r.bytes.equals(Buffer.from(lines.map((l) => `${l}\n`).join('')))).toBe(true);
  });

  it('keeps a character whole whichever of its bytes a read ends on, and redacts around it', async () => {
    const id = await createAccount(svc, admin);
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
    const line = Buffer.from(`{"accountId":"${id}","url":"https://example.org/é€😀","lat":1.5}\n`);
    const emoji = line.indexOf(Buffer.from('😀'));
    for (const cut of [emoji + 1, emoji + 2, emoji + 3]) {
      const r = await filter('purpose=ad_targeting&schema=clickstream', {
        pieces: [line.subarray(0, cut), line.subarray(cut)],
      });
      expect(r.body).toBe(`{"accountId":"${id}","url":"https://example.org/é€😀"}\n`);
    }
  });
});

it('leaves a chain that verifies, in-process and by `optgate audit verify --db` (the built CLI)', async () => {
  const rows = await auditRows(svc.databaseUrl);
  expect(rows.some((x) => x.data.passed)).toBe(true);
  expect(chainProblems(rows)).toEqual([]);
  const r = await verifyDb(svc.databaseUrl, svc.config.auth.keysDir);
  expect(r.stdout).toMatch(/INTACT/);
  expect(r.code).toBe(0);
});
