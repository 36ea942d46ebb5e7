import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runPipeline } from '../../examples/pipeline';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/** The example pipeline of docs/client.md, end to end: NDJSON file in, optgate's filter, allowed records out. */

let svc: TestService;
let dir: string;

beforeAll(async () => {
  svc = await startTestService();
  dir = await mkdtemp(path.join(os.tmpdir(), 'optgate-pipeline-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await svc.stop();
});

it('reads NDJSON, filters it through optgate, writes only what may be used', async () => {
  const admin = await adminToken(svc);
  const [yes, no] = [await createAccount(svc, admin), await createAccount(svc, admin)];
  await putConsents(svc, admin, yes, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
  const records = Array.from({ length: 2500 }, (_, i) => ({
    accountId: i % 2 ? no : yes,
    url: `https://example.org/${i}`,
    ts: 1767225600 + i,
  }));
  const input = path.join(dir, 'clicks.ndjson');
  const output = path.join(dir, 'allowed.ndjson');
  await writeFile(input, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const token = await svc.token('decisions', ['ad_targeting']);

  const counts = await runPipeline({
    baseUrl: svc.url,
    getToken: async () => token,
    input,
    output,
    filter: { purpose: 'ad_targeting', schema: 'clickstream' },
  });

  const written = (await readFile(output, 'utf8')).split('\n');
  expect(written.pop()).toBe('');
  expect(written).toEqual(records.filter((r) => r.accountId === yes).map((r) => JSON.stringify(r)));
  expect(counts).toEqual({ received: 2500, allowed: 1250, invalid: 0, redacted: 0 });
  await expect(stat(`${output}.partial`)).rejects.toThrow();
});

it('a failing call leaves no output file', async () => {
  const input = path.join(dir, 'one.ndjson');
  const output = path.join(dir, 'none.ndjson');
  await writeFile(input, '{"accountId":"A-1","url":"x"}\n');
  const token = await svc.token('decisions', ['fraud_protection']);
  await expect(
    runPipeline({
      baseUrl: svc.url,
      getToken: async () => token,
      input,
      output,
      filter: { purpose: 'ad_targeting', schema: 'clickstream' },
    }),
  ).rejects.toMatchObject({ status: 403 });
  await expect(stat(output)).rejects.toThrow();
  await expect(stat(`${output}.partial`)).rejects.toThrow();
});

it('runs as a program from the build: stdin to stdout, counts on stderr', async () => {
  const admin = await adminToken(svc);
  const yes = await createAccount(svc, admin);
  await putConsents(svc, admin, yes, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
  const records = [
    { accountId: yes, url: 'https://example.org/1', lat: 43.66, ts: 1 },
    { accountId: 'A-unknown', url: 'https://example.org/2', ts: 2 },
  ];
  const child = spawn(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'examples', 'pipeline.js')], {
    env: {
      ...process.env,
      OPTGATE_URL: svc.url,
      OPTGATE_TOKEN: await svc.token('decisions', ['ad_targeting']),
      OPTGATE_PURPOSE: 'ad_targeting',
      OPTGATE_SCHEMA: 'clickstream',
    },
  });
  child.stdin.end(records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const [stdout, stderr] = [text(child.stdout), text(child.stderr)];
  const [code] = await once(child, 'close');
  expect(code).toBe(0);
  expect(await stdout).toBe(`{"accountId":"${yes}","ts":1,"url":"https://example.org/1"}\n`);
  expect(JSON.parse(await stderr)).toEqual({ received: 2, allowed: 1, invalid: 0, redacted: 1 });
});

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  let all = '';
  for await (const chunk of stream) all += chunk.toString();
  return all;
}
