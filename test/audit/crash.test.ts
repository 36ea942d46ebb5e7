import pg from 'pg';
import {
  ALL_PURPOSES,
  auditRows,
  chainProblems,
  deleteRedisPrefix,
  http,
  processEnv,
  processToken,
  verifyDb,
} from '../support/audit';
import { dropDatabase } from '../support/database';
import { type Finished, finished, freePort, startProcess } from '../support/processes';

/**
 * SIGKILL in the middle of a decision load (the built service as a child process, real
 * PostgreSQL): every decision a client actually received has its audit record, and the chain is
 * intact. An answer is only sent once its record is committed, so a crash can lose answers, never
 * records of answers.
 */

const env = processEnv();
let sql: pg.Pool;
const children: Awaited<ReturnType<typeof startProcess>>[] = [];

beforeAll(() => {
  sql = new pg.Pool({ connectionString: env.DATABASE_URL, max: 2 });
  // The database is dropped with (force) at the end: a connection still closing must not crash the run.
  sql.on('error', () => undefined);
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await sql.end();
  await dropDatabase(env.DATABASE_URL);
  await deleteRedisPrefix(env.REDIS_PREFIX);
});

it('every decision answered before a SIGKILL has its durable audit record; the chain verifies and continues ' +
  'after a restart', async () => {
  const port = await freePort();
  const child = await startProcess(env, port);
  children.push(child);
  const exited: Promise<Finished> = finished(child, 120_000);
  const base = `http://127.0.0.1:${port}`;
  const token = await processToken(env, 'decisions consents:write accounts:write', ALL_PURPOSES);

  const accounts = Array.from({ length: 120 }, (_, i) => `crash-${i}`);
  expect(
    (
      await http(base, 'POST', '/v1/accounts', token, {
        accounts: accounts.map((accountId) => ({ accountId, status: 'active' })),
      })
    ).status,
  ).toBe(200);
  const granted = accounts.filter((_, i) => i % 3 === 0);
  await Promise.all(
    granted.map(async (id) => {
      const r = await http(base, 'PUT', `/v1/accounts/${id}/consents`, token, {
        channel: 'api',
        actor: 'subscriber',
        noticeVersion: 'v3',
        affirmative: true,
        changes: [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' }],
      });
      expect(r.status).toBe(200);
    }),
  );

  // What clients received: decisionId → the accounts it answered for (one audit record each).
  const received = new Map<string, { accountIds: string[]; allows: number }>();
  let failures = 0;
  let stop = false;
  const pick = (n: number) => Array.from({ length: n }, () => accounts[Math.floor(Math.random() * accounts.length)]!);
  const worker = async (w: number) => {
    for (let i = 0; !stop; i++) {
      try {
        if ((w + i) % 4 === 0) {
          const accountIds = [...new Set(pick(30))];
          const r = await http(base, 'POST', '/v1/decisions/batch', token, {
            purpose: 'ad_targeting',
            categories: ['web_browsing_history'],
            accountIds,
          });
          if (r.status === 200)
            received.set(r.body.decisionId, {
              accountIds,
              allows: r.body.results.filter((x: { allow: boolean }) => x.allow).length,
            });
        } else {
          const [accountId] = pick(1);
          const r = await http(base, 'POST', '/v1/decisions', token, {
            accountId,
            purpose: 'ad_targeting',
            categories: ['web_browsing_history'],
          });
          if (r.status === 200)
            received.set(r.body.decisionId, { accountIds: [accountId!], allows: r.body.allow ? 1 : 0 });
        }
      } catch {
        failures++; // the connection died with the process
        if (child.exitCode !== null || child.signalCode !== null) return;
      }
    }
  };
  const load = Array.from({ length: 16 }, (_, w) => worker(w));

  // Kill it mid-load: requests are in flight on every worker.
  while (received.size < 400) {
    if (child.exitCode !== null) throw new Error(`the service died before the kill: ${child.logs()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill('SIGKILL');
  const end = await exited;
  stop = true;
  await Promise.all(load);
  expect(end.signal).toBe('SIGKILL');
  expect(failures).toBeGreaterThan(0);

  const answered = [...received.values()];
  const expectedRecords = answered.reduce((n, a) => n + a.accountIds.length, 0);
  expect(answered.reduce((n, a) => n + a.allows, 0)).toBeGreaterThan(0);

  // Every answer a client holds has its records: one per account, in request order, with the outcome it was told.
  const stored = new Map<string, { accountId: string | null; outcome: string | null }[]>();
  const chain = await auditRows(env.DATABASE_URL);
  const rows = chain.filter((r) => r.type === 'decision');
  for (const r of rows) stored.set(r.data.decisionId, [...(stored.get(r.data.decisionId) ?? []), r]);
  const missing = [...received.keys()].filter((id) => !stored.has(id));
  expect(missing).toEqual([]);
  for (const [id, a] of received) {
    const recs = stored.get(id)!;
    expect(recs.map((r) => r.accountId)).toEqual(a.accountIds);
    expect(recs.filter((r) => r.outcome === 'allow')).toHaveLength(a.allows);
  }
  // Records of decisions whose answer was lost in the crash may exist; no answer exists without its record.
  expect(rows.length).toBeGreaterThanOrEqual(expectedRecords);
  console.log(
    `crash test: ${received.size} decisions answered (${expectedRecords} records) before SIGKILL; ${rows.length} ` +
      `decision records stored; ${failures} requests cut off`,
  );

  expect(chainProblems(chain)).toEqual([]);
  const verified = await verifyDb(env.DATABASE_URL, env.KEYS_DIR);
  expect(verified.stdout).toMatch(/RESULT: INTACT/);
  expect(verified.code).toBe(0);

  // A restarted instance continues the same chain.
  const headBefore = Number((await sql.query('select seq from audit_head')).rows[0].seq);
  const restarted = await startProcess(env, port);
  children.push(restarted);
  const after = await http(base, 'POST', '/v1/decisions', token, {
    accountId: granted[0],
    purpose: 'ad_targeting',
    categories: ['web_browsing_history'],
  });
  expect(after.body.allow).toBe(true);
  restarted.kill('SIGTERM');
  expect((await finished(restarted)).code).toBe(0);
  const [rec] = await auditRows(env.DATABASE_URL, (r) => r.data?.decisionId === after.body.decisionId);
  expect(rec!.seq).toBe(headBefore + 1);
  expect((await verifyDb(env.DATABASE_URL, env.KEYS_DIR)).code).toBe(0);
}, 120_000);
