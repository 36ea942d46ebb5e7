import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, OptgateProblemError, OptgateStreamCutError, type TokenSource } from 'optgate/client';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/** optgate/client's filter against the real service: streamed both ways, judged by a record schema. */

let svc: TestService;
let yes: string;
let no: string;
let getToken: TokenSource;
const purpose = 'ad_targeting';

beforeAll(async () => {
  svc = await startTestService();
  const admin = await adminToken(svc);
  yes = await createAccount(svc, admin);
  no = await createAccount(svc, admin);
  await putConsents(svc, admin, yes, [{ purpose, category: 'web_browsing_history', choice: 'grant' }]);
  const token = await svc.token('decisions', [purpose]);
  getToken = async () => token;
});
afterAll(() => svc.stop());

it('yields what the service passes on, in order, while the input is still being sent; counts at the end', async () => {
  const client = createClient({ baseUrl: svc.url, getToken });
  let gotFirst!: () => void;
  const firstArrived = new Promise<void>((resolve) => (gotFirst = resolve));
  async function* records() {
    yield { accountId: yes, url: 'https://example.org/a', ts: 1 };
    // The next record is produced only once the first answer has come back: a client that waited for the whole
    // input before reading would never get here.
    await firstArrived;
    yield { accountId: no, url: 'https://example.org/b', ts: 2 };
    yield `{"accountId":"${yes}","url":"https://example.org/c","lat":43.66,"ts":3}`;
    yield Buffer.from('not json\n');
  }
  const out: string[] = [];
  const stream = client.filter(records(), { purpose, schema: 'clickstream' });
  for await (const line of stream) {
    out.push(line);
    gotFirst();
  }
  expect(out).toEqual([
    JSON.stringify({ accountId: yes, url: 'https://example.org/a', ts: 1 }),
    // lat removed (no consent for precise_geolocation): re-serialised canonically.
    `{"accountId":"${yes}","ts":3,"url":"https://example.org/c"}`,
  ]);
  expect(stream.counts).toEqual({ received: 4, allowed: 2, invalid: 1, redacted: 1 });
});

it('a refused request is a typed error before any record', async () => {
  const client = createClient({ baseUrl: svc.url, getToken });
  const err = await (async () => {
    for await (const _ of client.filter([{ accountId: yes, url: 'x' }], { purpose, categories: ['name'] })) {
      // never reached
    }
  })().catch((e) => e);
  expect(err).toBeInstanceOf(OptgateProblemError);
  expect(err).toMatchObject({ status: 422, problemType: 'validation' });
  expect(err.errors).toEqual([expect.objectContaining({ path: 'schema' })]);
});

it("a failing input is thrown as the pipeline's own error, and the call is abandoned", async () => {
  const client = createClient({ baseUrl: svc.url, getToken });
  const broken = new Error('the source broke');
  async function* records() {
    yield { accountId: yes, url: 'https://example.org/a', ts: 1 };
    await sleep(50);
    throw broken;
  }
  const out: string[] = [];
  const stream = client.filter(records(), { purpose, schema: 'clickstream' });
  const err = await (async () => {
    for await (const line of stream) out.push(line);
  })().catch((e) => e);
  expect(err).toBe(broken);
  expect(stream.counts).toBeUndefined();
});

describe('a cut answer raises (a fake server, only for the failure)', () => {
  let server: http.Server;
  let behave: (res: http.ServerResponse) => void;
  let url: string;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => behave(res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });

  const drain = async (lines: string[]) => {
    const client = createClient({ baseUrl: url, getToken });
    const stream = client.filter([{ accountId: yes }], { purpose, schema: 'clickstream' });
    const err = await (async () => {
      for await (const line of stream) lines.push(line);
    })().catch((e) => e);
    return { err, counts: stream.counts };
  };

  it('the connection closed in the middle of the stream', async () => {
    behave = (res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson', trailer: 'x-optgate-received' });
      res.write('{"accountId":"A-1"}\n');
      setTimeout(() => res.socket?.destroy(), 20);
    };
    const lines: string[] = [];
    const { err, counts } = await drain(lines);
    expect(lines).toEqual(['{"accountId":"A-1"}']);
    expect(err).toBeInstanceOf(OptgateStreamCutError);
    expect(counts).toBeUndefined();
  });

  it('a stream that ends without its counts', async () => {
    behave = (res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end('{"accountId":"A-1"}\n');
    };
    const { err, counts } = await drain([]);
    expect(err).toBeInstanceOf(OptgateStreamCutError);
    expect(counts).toBeUndefined();
  });
});
