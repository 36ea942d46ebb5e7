import net from 'node:net';
import { Writable } from 'node:stream';
import zlib from 'node:zlib';
import { createLogger } from '../../src/platform/logger';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/**
 * Input an attacker (or a broken client) sends: compressed bodies that do not decompress, an
 * encoding we do not take, headers far over the limit. Each is a 4xx problem+json, logged as a
 * request (info), never as a failure of ours (error), never a 503, never an allow.
 */

let svc: TestService;
let admin: string;
let accountId: string;
const logs: { level: number; msg: string; status?: number }[] = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  // The filter's declared-categories mode keeps these bodies small (no record schema to satisfy).
  svc = await startTestService(
    { LOG_LEVEL: 'info', FILTER_ALLOW_DECLARED: 'true' },
    { logger: createLogger('info', sink) },
  );
  admin = await adminToken(svc);
  accountId = await createAccount(svc, admin);
  await putConsents(svc, admin, accountId, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
});
afterAll(() => svc.stop());

const json = (o: unknown) => Buffer.from(JSON.stringify(o));
const decision = () => json({ accountId, purpose: 'ad_targeting', categories: ['name'] });
const gzip = (b: Buffer) => zlib.gzipSync(b);

async function post(path: string, body: Buffer, headers: Record<string, string>) {
  const res = await fetch(svc.url + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, ...headers },
    body,
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, id: res.headers.get('x-request-id') };
}

const FILTER = '/v1/filter?purpose=ad_targeting&categories=name';
const NDJSON = { 'content-type': 'application/x-ndjson' };
const JSON_TYPE = { 'content-type': 'application/json' };

it('a valid gzip, deflate or br body is read, on JSON routes and on the streaming filter', async () => {
  for (const [encoding, encode] of [
    ['gzip', zlib.gzipSync],
    ['deflate', zlib.deflateSync],
    ['br', zlib.brotliCompressSync],
  ] as const) {
    const r = await post('/v1/decisions', encode(decision()), { ...JSON_TYPE, 'content-encoding': encoding });
    expect([encoding, r.status, JSON.parse(r.text).allow]).toEqual([encoding, 200, true]);
    const lines = `{"accountId":"${accountId}","n":1}\n{"accountId":"A-nobody","n":2}\n`;
    const f = await post(FILTER, encode(Buffer.from(lines)), { ...NDJSON, 'content-encoding': encoding });
    expect([encoding, f.status, f.text]).toEqual([encoding, 200, `{"accountId":"${accountId}","n":1}\n`]);
  }
});

it.each([
  ['gzip', Buffer.from('this is not gzip at all')],
  ['gzip', gzip(Buffer.from('{"accountId": "x"}')).subarray(0, 12)],
  ['deflate', Buffer.from('not deflate')],
  ['br', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00])],
])('%s that does not decompress is a 400 problem, on JSON routes and the filter', async (encoding, body) => {
  for (const [path, headers] of [
    ['/v1/decisions', JSON_TYPE],
    ['/v1/decisions/batch', JSON_TYPE],
    ['/v1/accounts', JSON_TYPE],
    [FILTER, NDJSON],
  ] as const) {
    const r = await post(path, body, { ...headers, 'content-encoding': encoding });
    expect([path, r.status, r.type]).toEqual([path, 400, expect.stringMatching(/^application\/problem\+json/)]);
    expect(JSON.parse(r.text)).toMatchObject({ type: 'urn:optgate:problem:bad-request', requestId: r.id });
  }
});

it('an encoding we do not accept is a 415 problem', async () => {
  for (const [path, headers] of [
    ['/v1/decisions', JSON_TYPE],
    [FILTER, NDJSON],
  ] as const) {
    const r = await post(path, decision(), { ...headers, 'content-encoding': 'compress' });
    expect([path, r.status]).toEqual([path, 415]);
    expect(JSON.parse(r.text).type).toBe('urn:optgate:problem:unsupported-media-type');
  }
});

it('none of these was logged as an error: each is a request line at info', () => {
  expect(logs.filter((l) => l.level >= 50)).toEqual([]);
  const bad = logs.filter((l) => l.msg === 'request' && l.status === 400);
  expect(bad.length).toBeGreaterThanOrEqual(16);
  for (const l of bad) expect(l.level).toBe(30);
});

/** Raw HTTP, so that nothing on the client side trims or refuses the request. */
function rawRequest(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(svc.port, '127.0.0.1', () => socket.end(request));
    let answer = '';
    socket.on('data', (d) => {
      answer += d;
    });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

it('a 100 KB Authorization header is a 431 problem+json, not a bare status line', async () => {
  const answer = await rawRequest(
    `GET /v1/accounts/A-1/consents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(100_000)}\r\n\r\n`,
  );
  const [head, body] = answer.split('\r\n\r\n') as [string, string];
  expect(head).toMatch(/^HTTP\/1\.1 431 /);
  expect(head).toMatch(/content-type: application\/problem\+json/i);
  expect(JSON.parse(body)).toMatchObject({ type: 'urn:optgate:problem:headers-too-large', status: 431 });
});

it('a malformed request line is a 400 problem+json', async () => {
  const answer = await rawRequest('GARBAGE\r\n\r\n');
  const [head, body] = answer.split('\r\n\r\n') as [string, string];
  expect(head).toMatch(/^HTTP\/1\.1 400 /);
  expect(JSON.parse(body)).toMatchObject({ type: 'urn:optgate:problem:bad-request', status: 400 });
});

it('a record over 1 MiB in the filter: 413 before any output, finished line or not; a cut stream after', async () => {
  const long = `{"accountId":"${accountId}","pad":"${'x'.repeat(1_200_000)}"}`;
  for (const body of [long, `${long}\n`, `{"accountId":"A-nobody"}\n${long}\n`]) {
    const r = await post(FILTER, Buffer.from(body), NDJSON);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.text).type).toBe('urn:optgate:problem:payload-too-large');
  }
  // An allowed record has gone out: the status cannot change any more, so the response is cut, never completed.
  await expect(post(FILTER, Buffer.from(`{"accountId":"${accountId}"}\n${long}\n`), NDJSON)).rejects.toThrow();
});
