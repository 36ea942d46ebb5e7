import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir, until } from '../support/audit';
import { textOf } from '../support/browser';
import { type ConsoleClient, staffActions, staffClient } from '../support/console';
import { adminToken, createAccount, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { CLI, finished } from '../support/processes';

/**
 * The regulator's question at the console: account (or all), purpose, period, outcome; the answer is
 * exactly what /v1/audit/events gives for the same filters, newest first, each allowed use with its
 * consent; every answer shown is recorded; its export is exactly the answer and verifies offline
 * with the command the page prints.
 */

let svc: TestService;
let audit: string;
let accounts: string[];
const today = () => new Date().toISOString().slice(0, 10);
const yesterday = () => new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

const AD = { purpose: 'ad_targeting', categories: ['web_browsing_history'] };
const ANALYTICS = { purpose: 'product_analytics', categories: ['other_customer_info'] };

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', EXPORT_PACE_PERCENT: '100', CONSOLE_SIGNIN_PER_MINUTE: '1000' });
  const admin = await adminToken(svc);
  audit = await svc.token('audit:read');
  // A pipeline with a display name in config/pipelines.json.
  const pipeline = await svc.token('decisions', ['ad_targeting', 'product_analytics'], { subject: 'ad-pipeline' });
  accounts = [];
  for (let i = 0; i < 3; i++) accounts.push(await createAccount(svc, admin));
  const [a, b, c] = accounts as [string, string, string];
  expect(
    (await putConsents(svc, admin, a, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]))
      .status,
  ).toBe(200);
  expect(
    (
      await putConsents(svc, admin, c, [
        { purpose: 'product_analytics', category: 'other_customer_info', choice: 'opt_out' },
      ])
    ).status,
  ).toBe(200);
  for (const body of [AD, ANALYTICS]) {
    for (const accountId of [a, b, c]) {
      const r = await call(svc.url, 'POST', '/v1/decisions', { token: pipeline, body: { ...body, accountId } });
      expect(r.status).toBe(200);
    }
    // A batch call too, with unknown accounts: more than a page of answers for "all accounts".
    const accountIds = [a, b, c, ...Array.from({ length: 60 }, (_, i) => `unknown-${i}`)];
    const r = await call(svc.url, 'POST', '/v1/decisions/batch', { token: pipeline, body: { ...body, accountIds } });
    expect(r.status).toBe(200);
  }
}, 60_000);
afterAll(() => svc?.stop());

type Ask = { account?: string; purpose?: string; from?: string; to?: string; outcome?: string };
const query = (q: Ask) =>
  new URLSearchParams({
    account: q.account ?? '',
    purpose: q.purpose ?? 'any',
    from: q.from ?? today(),
    to: q.to ?? today(),
    outcome: q.outcome ?? 'both',
  }).toString();

/** The words of a page as a reader sees them: tags removed without a space, so that "(<code>x</code>)" reads "(x)". */
const words = (html: string) =>
  html
    .replace(/<[^>]+>/g, '')
    .replace(/&amp;/g, '&')
    .replace(/&#39;/g, "'")
    .replace(/\s+/g, ' ');

const seqsOf = (html: string) => [...html.matchAll(/record <span class="seq">(\d+)<\/span>/g)].map((m) => Number(m[1]));

/** Every page of the answer: its records' seqs, newest first, and how many pages it took. */
async function answer(client: ConsoleClient, q: Ask): Promise<{ seqs: number[]; pages: number; first: string }> {
  const seqs: number[] = [];
  let target = `/console/question?${query(q)}`;
  let first = '';
  for (let pages = 1; ; pages++) {
    const r = await client.get(target);
    expect(r.status).toBe(200);
    first ||= r.body;
    seqs.push(...seqsOf(r.body));
    const older = /<a href="([^"]+)">Older<\/a>/.exec(r.body)?.[1];
    if (!older) return { seqs, pages, first };
    target = older.replace(/&amp;/g, '&');
  }
}

/** What /v1/audit/events gives for the same question: decision seqs, in sequence order. */
async function expected(q: Ask): Promise<number[]> {
  const from = `${q.from ?? today()}T00:00:00.000Z`;
  const to = new Date(Date.parse(`${q.to ?? today()}T00:00:00Z`) + 86_400_000).toISOString();
  const params = new URLSearchParams({ type: 'decision', from, to, limit: '1000' });
  if (q.account) params.set('accountId', q.account);
  if (q.purpose && q.purpose !== 'any') params.set('purpose', q.purpose);
  if (q.outcome && q.outcome !== 'both') params.set('outcome', q.outcome);
  const r = await call(svc.url, 'GET', `/v1/audit/events?${params}`, { token: audit });
  expect(r.status).toBe(200);
  expect(r.body.nextCursor).toBeNull();
  return r.body.events.map((e: { seq: number }) => e.seq);
}

describe('the question and its answer', () => {
  it('without a question, the form alone: the last 30 days, any purpose, both answers; nothing recorded', async () => {
    const sub = uniqueId('cleo');
    const client = await staffClient(svc, sub, 'compliance');
    const r = await client.get('/console/question');
    expect(r.status).toBe(200);
    expect(r.body).toContain(`name="to" type="date" required value="${today()}"`);
    const from = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
    expect(r.body).toContain(`name="from" type="date" required value="${from}"`);
    expect(textOf(r.body)).toContain('Targeted advertising');
    expect(r.body).not.toContain('id="answer-title"');
    expect((await staffActions(svc, 'console_viewed')).filter((v) => v.data.actor === sub)).toEqual([]);
  });

  it.each<[string, () => Ask]>([
    ['one account', () => ({ account: accounts[0] })],
    ['all accounts', () => ({})],
    ['one purpose', () => ({ purpose: 'product_analytics' })],
    ['allowed uses of a purpose', () => ({ purpose: 'ad_targeting', outcome: 'allow' })],
    ['refusals of one account', () => ({ account: accounts[2], outcome: 'deny' })],
    ['a period without decisions', () => ({ from: yesterday(), to: yesterday() })],
    ['a period around today', () => ({ from: yesterday(), to: tomorrow(), purpose: 'ad_targeting' })],
  ])('%s: exactly the records of /v1/audit/events, newest first, each view recorded', async (_name, ask) => {
    const q = ask();
    const sub = uniqueId('quinn');
    const client = await staffClient(svc, sub, 'compliance');
    const got = await answer(client, q);
    const want = await expected(q);
    expect(got.seqs).toEqual([...want].reverse());
    if (want.length > 50) expect(got.pages).toBe(Math.ceil(want.length / 50));
    if (!want.length) expect(textOf(got.first)).toContain('No decision matches the question.');
    const views = (await staffActions(svc, 'console_viewed')).filter((v) => v.data.actor === sub);
    expect(views).toHaveLength(got.pages);
    for (const v of views) {
      expect(v.accountId).toBe(q.account ?? null);
      expect(v.data).toMatchObject({
        role: 'compliance',
        view: 'question',
        filters: {
          from: q.from ?? today(),
          to: q.to ?? today(),
          outcome: q.outcome ?? 'both',
          purpose: q.purpose ?? 'any',
        },
      });
    }
  });

  it('the answers are not empty where they should not be', async () => {
    expect((await expected({ account: accounts[0] })).length).toBe(4);
    expect((await expected({})).length).toBe(6 + 2 * 63);
    expect((await expected({ purpose: 'ad_targeting', outcome: 'allow' })).length).toBe(2);
  });

  it('an allowed use shows the client by name, and the consent it rested on', async () => {
    const client = await staffClient(svc, uniqueId('ada'), 'compliance');
    const r = await client.get(
      `/console/question?${query({ account: accounts[0], purpose: 'ad_targeting', outcome: 'allow' })}`,
    );
    const events = await call(
      svc.url,
      'GET',
      `/v1/audit/events?type=decision&purpose=ad_targeting&outcome=allow&accountId=${accounts[0]}&include=consents`,
      { token: audit },
    );
    const consent = events.body.events[0].consents[0];
    expect(consent).toMatchObject({ kind: 'granted', category: 'web_browsing_history', channel: 'call_center' });
    const text = words(r.body);
    expect(text).toContain('Allowed');
    expect(text).toContain('Our advertising system (ad-pipeline)');
    expect(text).toContain('Targeted advertising (ad_targeting)');
    expect(text).toContain('consent_granted');
    expect(text).toContain(`granted for`);
    expect(text).toContain(`channel call_center, notice ${consent.noticeVersion}`);
    expect(r.body).toContain(consent.eventId);
  });

  it.each<[string, string, string]>([
    ['a malformed date', 'from=2026-13-01&to=2026-12-01&outcome=both&purpose=any&account=', 'From'],
    ['an unknown purpose', `from=${today()}&to=${today()}&outcome=both&purpose=no_such_thing&account=`, 'Purpose'],
    ['a malformed account', `from=${today()}&to=${today()}&outcome=both&purpose=any&account=a%20b`, 'Account id'],
    ['an unknown outcome', `from=${today()}&to=${today()}&outcome=maybe&purpose=any&account=`, 'Answer'],
    ['a period that ends before it starts', `from=${today()}&to=${yesterday()}&outcome=both&purpose=any`, 'To'],
  ])('%s is 422, the field named, nothing recorded', async (_name, q, field) => {
    const sub = uniqueId('val');
    const client = await staffClient(svc, sub, 'compliance');
    const r = await client.get(`/console/question?${q}`);
    expect(r.status).toBe(422);
    expect(textOf(r.body)).toContain('The question cannot be asked as it is');
    expect(r.body).toMatch(new RegExp(`<li><a href="#[a-z]+">${field}</a>:`));
    expect((await staffActions(svc, 'console_viewed')).filter((v) => v.data.actor === sub)).toEqual([]);
  });

  it('support staff get 403 for the question and the exports', async () => {
    const client = await staffClient(svc, uniqueId('sam'), 'support');
    expect((await client.get(`/console/question?${query({})}`)).status).toBe(403);
    expect((await client.get('/console/exports')).status).toBe(403);
    const csrf = await client.csrf();
    expect(
      (await client.post('/console/exports', { _csrf: csrf, ...Object.fromEntries(new URLSearchParams(query({}))) }))
        .status,
    ).toBe(403);
  });
});

describe('exporting the answer', () => {
  it('exports exactly the answer, recorded with the role; the command the page prints verifies it', async () => {
    const sub = uniqueId('erin');
    const client = await staffClient(svc, sub, 'compliance');
    const q: Ask = { purpose: 'ad_targeting', from: yesterday(), to: today() };
    const { seqs, first } = await answer(client, q);
    expect(seqs.length).toBeGreaterThan(50);
    // The export form carries the question as it was asked.
    const form = /<form class="search export"[\s\S]*?<\/form>/.exec(first)![0];
    const fields = Object.fromEntries(
      [...form.matchAll(/name="([a-z_]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
    );
    expect(fields).toMatchObject({
      account: '',
      purpose: 'ad_targeting',
      from: yesterday(),
      to: today(),
      outcome: 'both',
    });
    // Without the CSRF token: nothing.
    expect((await client.post('/console/exports', { ...fields, _csrf: 'wrong', format: 'ndjson' })).status).toBe(403);

    const started = await client.post('/console/exports', { ...fields, format: 'ndjson' });
    expect(started.status).toBe(303);
    const id = /^\/console\/exports\/([0-9a-f-]{36})$/.exec(started.location ?? '')?.[1];
    expect(id).toBeDefined();
    const requested = (await staffActions(svc, 'export_requested')).filter((r) => r.data.exportId === id);
    expect(requested).toEqual([
      expect.objectContaining({
        accountId: null,
        data: expect.objectContaining({
          actor: sub,
          role: 'compliance',
          format: 'ndjson',
          filters: {
            types: ['decision'],
            from: `${yesterday()}T00:00:00.000Z`,
            to: new Date(Date.parse(`${today()}T00:00:00Z`) + 86_400_000).toISOString(),
            purpose: 'ad_targeting',
          },
        }),
      }),
    ]);

    // The export's page, refreshed until it is done (no script: a link).
    const page = await until(
      `export ${id}`,
      async () => {
        const r = await client.get(`/console/exports/${id}`);
        expect(r.status).toBe(200);
        if (!/Completed/.test(textOf(r.body))) expect(r.body).toContain(`href="/console/exports/${id}">Refresh</a>`);
        return /Completed/.test(textOf(r.body)) ? r.body : undefined;
      },
      30_000,
      200,
    );
    expect(textOf(page)).toContain(`Completed: ${seqs.length} records`);
    const list = await client.get('/console/exports');
    expect(list.status).toBe(200);
    expect(list.body).toContain(`/console/exports/${id}`);
    expect(words(list.body)).toContain(`Decisions; all accounts; Targeted advertising (ad_targeting);`);

    const command = textOf(/<pre class="command"><code>([^<]+)<\/code><\/pre>/.exec(page)![1]!);
    expect(command).toBe(
      `npx optgate audit verify optgate-export-${id}.ndjson --manifest optgate-export-${id}.manifest.jws ` +
        '--jwks jwks.json',
    );
    const [, , ...args] = command.split(' ');
    const [, , file, , manifest, , jwks] = args;

    // The three downloads, under the names the command uses.
    const dir = await tempDir();
    const viewsBefore = (await staffActions(svc, 'console_viewed')).filter((v) => v.data.actor === sub).length;
    const fileReply = await fetch(`${svc.url}/console/exports/${id}/file`, { headers: { cookie: client.cookie! } });
    expect(fileReply.status).toBe(200);
    expect(fileReply.headers.get('content-disposition')).toBe(`attachment; filename="${file}"`);
    await writeFile(path.join(dir, file!), Buffer.from(await fileReply.arrayBuffer()));
    const manifestReply = await client.get(`/console/exports/${id}/manifest.jws`);
    expect(manifestReply.status).toBe(200);
    expect(manifestReply.headers.get('content-disposition')).toBe(`attachment; filename="${manifest}"`);
    await writeFile(path.join(dir, manifest!), manifestReply.body);
    expect(page).toContain(`href="/.well-known/jwks.json" download="${jwks}"`);
    await writeFile(path.join(dir, jwks!), await (await fetch(`${svc.url}/.well-known/jwks.json`)).text());

    const views = (await staffActions(svc, 'console_viewed')).filter((v) => v.data.actor === sub);
    expect(views.slice(viewsBefore)).toEqual([
      expect.objectContaining({
        accountId: null,
        data: expect.objectContaining({ view: 'export', filters: { exportId: id } }),
      }),
    ]);

    // Exactly the answer's records.
    const lines = (await readFile(path.join(dir, file!), 'utf8')).trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([...seqs].reverse());

    // The command as printed, in the folder of the downloads, with the built CLI.
    const run = await finished(
      spawn(process.execPath, [CLI, ...args], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent' },
      }),
      60_000,
    );
    expect(run.stdout).toContain('RESULT: INTACT');
    expect(run.code).toBe(0);
  }, 90_000);

  it('a bad export form is a 422 page; an unknown export is 404', async () => {
    const client = await staffClient(svc, uniqueId('fay'), 'compliance');
    const csrf = await client.csrf();
    const bad = await client.post('/console/exports', {
      _csrf: csrf,
      ...Object.fromEntries(new URLSearchParams(query({}))),
      format: 'xml',
    });
    expect(bad.status).toBe(422);
    expect(textOf(bad.body)).toContain('format');
    expect((await client.get('/console/exports/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await client.get('/console/exports/not-an-id')).status).toBe(404);
  });
});

describe('the export limit', () => {
  let idle: TestService;
  beforeAll(async () => {
    // No worker: exports stay queued, and one person may have one at a time.
    idle = await startTestService({ RUN_WORKERS: 'false', EXPORT_MAX_PENDING: '1' });
  }, 60_000);
  afterAll(() => idle?.stop());

  it('one export too many is a clear 429 page, not an error; the first stays queued with a refresh link', async () => {
    const client = await staffClient(idle, uniqueId('gus'), 'compliance');
    const csrf = await client.csrf();
    const form = { _csrf: csrf, ...Object.fromEntries(new URLSearchParams(query({}))), format: 'csv' };
    const first = await client.post('/console/exports', form);
    expect(first.status).toBe(303);
    const queued = await client.get(first.location!);
    expect(textOf(queued.body)).toContain('Queued: waiting for a worker.');
    expect(queued.body).toContain('>Refresh</a>');
    expect(queued.body).not.toContain('/file"');
    expect((await client.get(`${first.location}/file`)).status).toBe(409);

    const second = await client.post('/console/exports', form);
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('30');
    expect(textOf(second.body)).toContain('Too many exports at once');
    expect(textOf(second.body)).toContain('Nothing was started');
  });
});
