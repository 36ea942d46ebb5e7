import { readRecords } from '../../src/audit';
import type { RecordQuery } from '../../src/audit/audit.repository';
import { createDb, type Db } from '../../src/platform/db/database';
import { createLogger } from '../../src/platform/logger';
import { type AuditRow, auditRows, chainProblems } from '../support/audit';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Paging through the log, whatever table holds each record: single decisions, the verdicts of
 * batch calls (found through their headers, audit_verdicts having no b-tree on seq), consent
 * events. Every page size, order and filter gives exactly the records of one full read, in order,
 * none twice and none skipped, across batches, gaps between them and the page boundaries inside
 * them.
 */

let svc: TestService;
let db: Db;
let all: AuditRow[];
let middle: { from: string; to: string };

beforeAll(async () => {
  svc = await startTestService();
  ({ db } = createDb({ url: svc.databaseUrl, poolSize: 2, statementTimeoutMs: 30_000 }, createLogger('silent')));
  const admin = await adminToken(svc);
  const accounts = await Promise.all(Array.from({ length: 12 }, () => createAccount(svc, admin)));
  for (const id of accounts.slice(0, 5)) {
    await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }]);
  }
  const body = { purpose: 'ad_targeting', categories: ['web_browsing_history'] };
  // A fixed, irregular interleaving: batches of 1 to 140 accounts (the 140s span three tiles), singles, consent events.
  const steps = ['b140', 's', 's', 'b1', 'c', 'b63', 'b64', 's', 'b65', 'c', 's', 's', 's', 'b140', 'b7', 'c', 's'];
  for (const [i, step] of steps.entries()) {
    if (i === Math.floor(steps.length / 2)) middle = { from: new Date().toISOString(), to: '' };
    const id = accounts[i % accounts.length]!;
    if (step === 's') {
      await call(svc.url, 'POST', '/v1/decisions', { token: admin, body: { ...body, accountId: id } });
    } else if (step === 'c') {
      const choice = i % 2 ? 'grant' : 'revoke';
      await putConsents(svc, admin, id, [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice }]);
    } else {
      const n = Number(step.slice(1));
      const accountIds = Array.from({ length: n }, (_, k) => (k % 3 ? accounts[k % accounts.length]! : `unknown-${k}`));
      const r = await call(svc.url, 'POST', '/v1/decisions/batch', { token: admin, body: { ...body, accountIds } });
      expect(r.status).toBe(200);
    }
    if (i === steps.length - 3) middle.to = new Date().toISOString();
  }
  all = await auditRows(svc.databaseUrl);
}, 60_000);
afterAll(async () => {
  await db?.destroy();
  await svc?.stop();
});

it('the full read is the whole chain: dense sequence numbers, every link valid', () => {
  expect(all.length).toBeGreaterThan(500);
  expect(all.map((r) => r.seq)).toEqual(all.map((_, i) => i + 1));
  expect(chainProblems(all)).toEqual([]);
});

const FILTERS: { name: string; query: () => Partial<RecordQuery>; keep: (r: AuditRow) => boolean }[] = [
  { name: 'no filter', query: () => ({}), keep: () => true },
  { name: 'denies', query: () => ({ outcome: 'deny' }), keep: (r) => r.outcome === 'deny' },
  { name: 'allows', query: () => ({ outcome: 'allow' }), keep: (r) => r.outcome === 'allow' },
  { name: 'decisions', query: () => ({ types: ['decision'] }), keep: (r) => r.type === 'decision' },
  { name: 'consent events', query: () => ({ types: ['consent_event'] }), keep: (r) => r.type === 'consent_event' },
  {
    name: 'a time range',
    query: () => middle,
    keep: (r) => r.recordedAt >= new Date(middle.from) && r.recordedAt < new Date(middle.to),
  },
];

describe.each(FILTERS)('$name', ({ query, keep }) => {
  it.each([13, 64, 250])('pages of %i, ascending and descending, give the full read', async (limit) => {
    const expected = all.filter(keep).map((r) => `${r.seq}:${r.hash}`);
    expect(expected.length).toBeGreaterThan(0);

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
  });
});
