import { readFile } from 'node:fs/promises';
import { readRecords } from '../../src/audit';
import { countRecords, type RecordQuery } from '../../src/audit/audit.repository';
import { createDb, type Db } from '../../src/platform/db/database';
import { createLogger } from '../../src/platform/logger';
import { type AuditRow, auditRows, exportAndWait, fetchExport, tempDir } from '../support/audit';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { CLI, run } from '../support/processes';

/** The built CLI's `audit verify`. */
const verifyFile = (file: string, manifest: string, jwks: string) =>
  run(CLI, ['audit', 'verify', file, '--manifest', manifest, '--jwks', jwks], {}, 60_000);

/**
 * The purpose filter: decisions by their header's purpose (single decisions and the verdicts of
 * batch calls, whose tiles and spans interleave with other purposes' calls), consent events by
 * theirs; never a staff action. Reader, count, /v1/audit/events and exports agree with a full read.
 */

let svc: TestService;
let db: Db;
let all: AuditRow[];
let admin: string;
let accounts: string[];

const AD = { purpose: 'ad_targeting', categories: ['web_browsing_history'] };
const ANALYTICS = { purpose: 'product_analytics', categories: ['other_customer_info'] };
const purposeOf = (r: AuditRow): string | undefined =>
  r.type === 'decision' || r.type === 'consent_event' ? r.data?.purpose : undefined;

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', EXPORT_PACE_PERCENT: '100' });
  ({ db } = createDb({ url: svc.databaseUrl, poolSize: 2, statementTimeoutMs: 30_000 }, createLogger('silent')));
  admin = await adminToken(svc);
  accounts = [];
  for (let i = 0; i < 6; i++) accounts.push(await createAccount(svc, admin));
  for (const id of accounts.slice(0, 3)) {
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
  }
  await putConsents(svc, admin, accounts[3]!, [
    { purpose: 'product_analytics', category: 'other_customer_info', choice: 'opt_out' },
  ]);
  // Both purposes interleaved: singles, small batches, and batches of 140 (three tiles each).
  const steps = ['bA140', 'sA', 'bP7', 'sP', 'bA3', 'bP140', 'sA', 'bA64', 'sP', 'bP1', 'bA140', 'sP'];
  for (const [i, step] of steps.entries()) {
    const body = step[1] === 'A' ? AD : ANALYTICS;
    const id = accounts[i % accounts.length]!;
    if (step[0] === 's') {
      const r = await call(svc.url, 'POST', '/v1/decisions', { token: admin, body: { ...body, accountId: id } });
      expect(r.status).toBe(200);
    } else {
      const n = Number(step.slice(2));
      const accountIds = Array.from({ length: n }, (_, k) => (k % 4 ? accounts[k % accounts.length]! : `unknown-${k}`));
      const r = await call(svc.url, 'POST', '/v1/decisions/batch', { token: admin, body: { ...body, accountIds } });
      expect(r.status).toBe(200);
    }
  }
  all = await auditRows(svc.databaseUrl);
}, 60_000);
afterAll(async () => {
  await db?.destroy();
  await svc?.stop();
});

const CASES: { name: string; query: () => Partial<RecordQuery>; keep: (r: AuditRow) => boolean }[] = [
  {
    name: 'ad_targeting',
    query: () => ({ purpose: 'ad_targeting' }),
    keep: (r) => purposeOf(r) === 'ad_targeting',
  },
  {
    name: 'product_analytics decisions',
    query: () => ({ purpose: 'product_analytics', types: ['decision'] }),
    keep: (r) => r.type === 'decision' && purposeOf(r) === 'product_analytics',
  },
  {
    name: 'product_analytics refusals',
    query: () => ({ purpose: 'product_analytics', outcome: 'deny' }),
    keep: (r) => purposeOf(r) === 'product_analytics' && r.outcome === 'deny',
  },
  {
    name: 'ad_targeting allows of one account',
    query: () => ({ purpose: 'ad_targeting', accountId: accounts[1], outcome: 'allow' }),
    keep: (r) => purposeOf(r) === 'ad_targeting' && r.accountId === accounts[1] && r.outcome === 'allow',
  },
  {
    name: 'product_analytics of one account',
    query: () => ({ purpose: 'product_analytics', accountId: accounts[3] }),
    keep: (r) => purposeOf(r) === 'product_analytics' && r.accountId === accounts[3],
  },
  {
    name: 'staff actions have no purpose',
    query: () => ({ purpose: 'ad_targeting', types: ['staff_action'] }),
    keep: () => false,
  },
];

describe.each(CASES)('purpose filter: $name', ({ query, keep }) => {
  it.each([17, 64, 500])(
    'pages of %i, ascending and descending, give the full read; the count agrees',
    async (limit) => {
      const expected = all.filter(keep).map((r) => `${r.seq}:${r.hash}`);
      const ascending: string[] = [];
      for (let afterSeq = 0; ; ) {
        const page = await readRecords(db, { ...query(), afterSeq, limit });
        ascending.push(...page.map((r) => `${r.seq}:${r.hash}`));
        if (page.length < limit) break;
        afterSeq = page[page.length - 1]!.seq;
      }
      expect(ascending).toEqual(expected);
      const descending: string[] = [];
      for (let beforeSeq: number | undefined; ; ) {
        const page = await readRecords(db, { ...query(), beforeSeq, order: 'desc', limit });
        descending.push(...page.map((r) => `${r.seq}:${r.hash}`));
        if (page.length < limit) break;
        beforeSeq = page[page.length - 1]!.seq;
      }
      expect(descending).toEqual([...expected].reverse());
      const throughSeq = all[all.length - 1]!.seq;
      expect(await countRecords(db, { ...query(), throughSeq })).toBe(expected.length);
    },
  );
});

it('the fixture holds batch and single decisions of both purposes, allowed and refused', () => {
  for (const purpose of ['ad_targeting', 'product_analytics']) {
    const decisions = all.filter((r) => r.type === 'decision' && purposeOf(r) === purpose);
    expect(decisions.some((r) => r.data.endpoint === 'batch')).toBe(true);
    expect(decisions.some((r) => r.data.endpoint === 'single')).toBe(true);
    expect(new Set(decisions.map((r) => r.outcome))).toEqual(new Set(['allow', 'deny']));
  }
});

it('GET /v1/audit/events?purpose= gives exactly the records of the purpose; unknown purposes are 422', async () => {
  const token = await svc.token('audit:read');
  const seqs: number[] = [];
  for (let cursor = ''; ; ) {
    const r = await call(
      svc.url,
      'GET',
      `/v1/audit/events?purpose=product_analytics&type=decision&limit=100${cursor ? `&cursor=${cursor}` : ''}`,
      { token },
    );
    expect(r.status).toBe(200);
    seqs.push(...r.body.events.map((e: { seq: number }) => e.seq));
    if (!r.body.nextCursor) break;
    cursor = r.body.nextCursor;
  }
  expect(seqs).toEqual(
    all.filter((r) => r.type === 'decision' && purposeOf(r) === 'product_analytics').map((r) => r.seq),
  );

  const unknown = await call(svc.url, 'GET', '/v1/audit/events?purpose=no_such_purpose', { token });
  expect(unknown.status).toBe(422);
  expect(unknown.body.errors).toEqual([{ path: 'purpose', message: 'unknown purpose' }]);
  const malformed = await call(svc.url, 'GET', '/v1/audit/events?purpose=Not%20A%20Purpose', { token });
  expect(malformed.status).toBe(422);
  const exportUnknown = await call(svc.url, 'POST', '/v1/audit/exports', {
    token,
    body: { format: 'ndjson', purpose: 'no_such_purpose' },
  });
  expect(exportUnknown.status).toBe(422);
  expect(exportUnknown.body.errors).toEqual([{ path: 'purpose', message: 'unknown purpose' }]);
});

it.each(['ndjson', 'csv'])(
  'an export of one purpose (%s) holds exactly its records, its manifest names the filter, and it verifies',
  async (format) => {
    const token = await svc.token('audit:read');
    const done = await exportAndWait(svc.url, token, { format, purpose: 'ad_targeting', outcome: 'allow' });
    const expected = all.filter((r) => purposeOf(r) === 'ad_targeting' && r.outcome === 'allow');
    expect(done.rows).toBe(expected.length);
    expect(done.filters).toEqual({ purpose: 'ad_targeting', outcome: 'allow' });
    const dir = await tempDir();
    const files = await fetchExport(svc.url, token, done.exportId, dir, format);
    const text = await readFile(files.file, 'utf8');
    const seqs =
      format === 'ndjson'
        ? text
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l).seq)
        : text
            .trim()
            .split('\n')
            .slice(1)
            .map((l) => Number(l.split(',')[0]));
    expect(seqs).toEqual(expected.map((r) => r.seq));
    const manifest = JSON.parse(
      Buffer.from((await readFile(files.manifest, 'utf8')).split('.')[1]!, 'base64url').toString(),
    );
    expect(manifest).toMatchObject({ filters: { purpose: 'ad_targeting', outcome: 'allow' }, contiguous: false });
    const verified = await verifyFile(files.file, files.manifest, files.jwks);
    expect(verified.stdout).toContain('RESULT: INTACT');
    expect(verified.code).toBe(0);
  },
  60_000,
);
