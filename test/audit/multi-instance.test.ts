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
 * Two instances of the built service (two processes) on one PostgreSQL database and one Redis
 * prefix, as in a scaled-out deployment, taking decisions, consent changes and account imports at
 * once: the audit log stays one gap-free chain, and holds exactly one record per thing answered.
 */

const env = processEnv({ DB_POOL_SIZE: '8' });
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

it('concurrent writers on two instances produce one gap-free chain with a record per answer', async () => {
  const ports = [await freePort(), await freePort()];
  // One after the other: the first creates and migrates the database.
  for (const port of ports) children.push(await startProcess(env, port));
  const bases = ports.map((p) => `http://127.0.0.1:${p}`);
  const token = await processToken(env, 'decisions consents:write accounts:write', ALL_PURPOSES);

  const accounts = Array.from({ length: 40 }, (_, i) => `multi-${i}`);
  expect(
    (
      await http(bases[0]!, 'POST', '/v1/accounts', token, {
        accounts: accounts.map((accountId) => ({ accountId, status: 'active' })),
      })
    ).status,
  ).toBe(200);
  const head0 = Number((await sql.query('select seq from audit_head')).rows[0].seq);

  const answered = { decisions: 0, consentEvents: 0, staffActions: 0 };
  const decisionIds = new Set<string>();
  const byInstance = [0, 0];
  const statuses: number[] = [];
  /** request id → the instance that answered it, to see whose records the chain holds. */
  const answeredBy = new Map<string, number>();
  const worker = async (w: number) => {
    for (let i = 0; i < 40; i++) {
      const inst = (w + i) % 2;
      const base = bases[inst]!;
      const account = accounts[(w * 7 + i) % accounts.length]!;
      let r: Awaited<ReturnType<typeof http>>;
      switch (i % 5) {
        case 0:
        case 1:
          r = await http(base, 'POST', '/v1/decisions', token, {
            accountId: account,
            purpose: 'ad_targeting',
            categories: ['web_browsing_history', 'name'],
          });
          if (r.status === 200) {
            answered.decisions += 1;
            decisionIds.add(r.body.decisionId);
          }
          break;
        case 2: {
          const accountIds = accounts.slice(i % 10, (i % 10) + 12);
          r = await http(base, 'POST', '/v1/decisions/batch', token, {
            purpose: 'ad_targeting',
            categories: ['web_browsing_history'],
            accountIds,
          });
          if (r.status === 200) {
            answered.decisions += accountIds.length;
            decisionIds.add(r.body.decisionId);
          }
          break;
        }
        case 3: {
          const changes = [
            { purpose: 'ad_targeting', category: 'web_browsing_history', choice: i % 2 ? 'grant' : 'revoke' },
            { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
          ];
          r = await http(base, 'PUT', `/v1/accounts/${account}/consents`, token, {
            channel: 'api',
            actor: 'subscriber',
            noticeVersion: 'v3',
            affirmative: true,
            changes,
          });
          if (r.status === 200) answered.consentEvents += r.body.events.length;
          break;
        }
        default:
          r = await http(base, 'POST', '/v1/accounts', token, {
            accounts: [{ accountId: `multi-new-${w}-${i}`, status: 'active' }],
          });
          if (r.status === 200) answered.staffActions += 1;
      }
      statuses.push(r.status);
      answeredBy.set(r.headers.get('x-request-id')!, inst);
      byInstance[inst]!++;
    }
  };
  await Promise.all(Array.from({ length: 10 }, (_, w) => worker(w)));
  expect(statuses.filter((s) => s !== 200)).toEqual([]);
  expect(byInstance[0]).toBeGreaterThan(100);
  expect(byInstance[1]).toBeGreaterThan(100);

  const rows = await auditRows(env.DATABASE_URL);
  // One chain: seq 1..N, no repeats, no gaps, every link and hash intact, the head its last record.
  expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
  expect(chainProblems(rows)).toEqual([]);
  const head = (await sql.query('select seq, hash from audit_head')).rows[0];
  expect([Number(head.seq), head.hash]).toEqual([rows.length, rows.at(-1)!.hash]);

  // Exactly one record per thing answered.
  const after = rows.filter((r) => r.seq > head0);
  const decisions = after.filter((r) => r.type === 'decision');
  expect(decisions).toHaveLength(answered.decisions);
  expect(new Set(decisions.map((r) => r.data.decisionId))).toEqual(decisionIds);
  expect(after.filter((r) => r.type === 'consent_event')).toHaveLength(answered.consentEvents);
  expect(after.filter((r) => r.type === 'staff_action')).toHaveLength(answered.staffActions);
  expect(after).toHaveLength(answered.decisions + answered.consentEvents + answered.staffActions);
  // Both instances wrote into this one chain, interleaved.
  const writers = after.map((r) => answeredBy.get(r.data.requestId)).filter((x) => x !== undefined);
  expect(writers.length).toBe(decisions.length + after.filter((r) => r.type === 'consent_event').length);
  const switches = writers.filter((x, i) => i > 0 && x !== writers[i - 1]).length;
  expect(switches).toBeGreaterThan(20);
  // The consent events in the audit are exactly the consent events in the store.
  const events = (await sql.query('select event_id from consent_events')).rows.map((r) => r.event_id).sort();
  expect(
    rows
      .filter((r) => r.type === 'consent_event')
      .map((r) => r.data.eventId)
      .sort(),
  ).toEqual(events);

  const verified = await verifyDb(env.DATABASE_URL, env.KEYS_DIR);
  expect(verified.stdout).toMatch(/RESULT: INTACT/);
  expect(verified.code).toBe(0);

  const ends: Promise<Finished>[] = children.map((c) => {
    c.kill('SIGTERM');
    return finished(c);
  });
  for (const end of await Promise.all(ends)) expect(end.code).toBe(0);
}, 90_000);
