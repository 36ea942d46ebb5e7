import type { JSONWebKeySet } from 'jose';
import { AuditIntegrity } from '../../src/audit';
import { loadKeys } from '../../src/platform/auth/keys';
import { createDb, type Db } from '../../src/platform/db/database';
import { createLogger } from '../../src/platform/logger';
import { asAttacker, checkpointAtHead, until } from '../support/audit';
import { csrfOf, textOf } from '../support/browser';
import { type ConsoleClient, staffClient } from '../support/console';
import { adminToken, createAccount, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { CLI, cliEnv, run } from '../support/processes';

/**
 * Integrity at a glance (issue 13, point 4): the scheduled verification of the log, a part at a time from where the
 * last intact run stopped, each run recorded; the integrity page; the banner on every console page when the signed
 * head or the verification is late, or a verification failed. The CLI test needs the build (npm test builds first).
 */

let svc: TestService;
let admin: string;
let db: Db;
let jwks: JSONWebKeySet;

interface Row {
  id: number;
  from_seq: number;
  to_seq: number;
  records_checked: number;
  result: string;
  problem: string | null;
  problem_seq: number | null;
  ran_by: string;
}
const runs = async (): Promise<Row[]> =>
  (
    await svc.sql.query(
      `select id::int, from_seq::int, to_seq::int, records_checked::int, result, problem, problem_seq::int, ran_by
       from audit_verifications order by id`,
    )
  ).rows;
const lastRun = async () => (await runs()).at(-1)!;

/** The job's part: at most `maxRecords` a run (the service's own job runs once at the start, then weekly). */
const integrity = (maxRecords: number) =>
  new AuditIntegrity({
    db,
    jwks,
    clock: () => new Date(),
    intervalMs: 3_600_000,
    maxRecords,
    checkpointIntervalMs: 1000,
  });

/** Accounts (a staff_action record each) and a batch decision over them (decision records). */
async function someRecords(n: number): Promise<void> {
  const ids = Array.from({ length: n }, () => uniqueId('int'));
  const r = await call(svc.url, 'POST', '/v1/accounts', {
    token: admin,
    body: { accounts: ids.map((accountId) => ({ accountId, status: 'active' })) },
  });
  expect(r.status).toBe(200);
  const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
    token: admin,
    body: { purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds: ids },
  });
  expect(batch.status).toBe(200);
}

/**
 * The metrics once they show the result: the gauge is read from PostgreSQL at most once a second, so a scrape right
 * after a run may still show the one before.
 */
const metricsShowingResult = (value: 0 | 1) =>
  until(`optgate_audit_verify_last_result ${value}`, async () => {
    const text = await (await fetch(`${svc.url}/metrics`)).text();
    return new RegExp(`^optgate_audit_verify_last_result ${value}$`, 'm').test(text) && text;
  });

const alertOf = (html: string) => /<div class="banner warning" role="alert">([\s\S]*?)<\/div>/.exec(html)?.[1];

async function verifyNow(client: ConsoleClient) {
  const page = await client.get('/console/integrity');
  const r = await client.post('/console/integrity/verify', { _csrf: csrfOf(page.body)! });
  expect([r.status, r.location]).toEqual([303, '/console/integrity?ran=1']);
  return lastRun();
}

beforeAll(async () => {
  svc = await startTestService({
    RUN_WORKERS: 'true',
    AUDIT_VERIFY_INTERVAL_MS: String(7 * 86_400_000),
    CONSOLE_SIGNIN_PER_MINUTE: '1000',
  });
  admin = await adminToken(svc);
  db = createDb({ url: svc.databaseUrl, poolSize: 2, statementTimeoutMs: 30_000 }, createLogger('silent')).db;
  jwks = (await loadKeys(svc.config.auth, svc.config.env)).publicJwks;
  // A job scheduler runs its job at once, then every interval.
  await until('the first scheduled verification', async () => (await runs()).find((r) => r.ran_by === 'job'));
}, 60_000);
afterAll(async () => {
  await db?.destroy();
  await svc?.stop();
});

describe('the scheduled verification', () => {
  it('verifies a part at a time: the second run starts where the first ended', async () => {
    await someRecords(12);
    const head = await checkpointAtHead(svc.sql);
    const start = (await integrity(1).startPoint())?.seq ?? 0;
    expect(head - start).toBeGreaterThan(10);

    const first = await integrity(10).run('job');
    expect(first).toMatchObject({ result: 'intact', fromSeq: start + 1, toSeq: start + 10, recordsChecked: 10 });
    expect(first.reachedHead).toBe(false);
    const second = await integrity(1_000_000).run('job');
    expect(second).toMatchObject({ result: 'intact', fromSeq: start + 11, reachedHead: true, problem: null });
    expect(second.toSeq).toBeGreaterThanOrEqual(head);
    expect(second.recordsChecked).toBe(second.toSeq - start - 10);
    // Nothing new: an empty run, intact, that leaves the starting point where it was.
    const idle = await integrity(1_000_000).run('job');
    expect(idle).toMatchObject({ result: 'intact', recordsChecked: 0, fromSeq: second.toSeq + 1 });
    expect((await integrity(1).startPoint())?.seq).toBe(second.toSeq);
  });

  it('"Verify now" runs it from the console, recorded; the page shows the head, the runs and no banner', async () => {
    const before = (await integrity(1).startPoint())?.seq ?? 0;
    const client = await staffClient(svc, uniqueId('alice'), 'compliance');
    await checkpointAtHead(svc.sql);
    const row = await verifyNow(client);
    expect(row).toMatchObject({ ran_by: 'console', result: 'intact', from_seq: before + 1, problem: null });

    const page = await client.get('/console/integrity?ran=1');
    expect(page.status).toBe(200);
    expect(page.body).not.toMatch(/<script|\sstyle=|\son[a-z]+=|javascript:/i);
    expect(alertOf(page.body)).toBeUndefined();
    const text = textOf(page.body);
    expect(text).toContain('Integrity of the audit log');
    expect(text).toContain(`Verification run: intact, ${row.records_checked} records checked`);
    const tree = (await svc.sql.query('select seq::int, root_hash, kid from audit_checkpoints order by seq desc'))
      .rows[0];
    expect(text).toContain(`Records covered ${tree.seq.toLocaleString('en')}`);
    expect(page.body).toContain(`<code class="hash">${tree.root_hash}</code>`);
    expect(text).toContain(`Key ${tree.kid}`);
    expect(page.body).toMatch(/<details class="jws-details">\s*<summary>The signed head as issued \(JWS\)<\/summary>/);
    expect(text).toMatch(/Last run .+, less than a minute ago Result Intact/);
    expect(text).toContain('Scheduled job');
    expect(text).toContain('Console');
    expect(text).toContain('npx optgate audit verify --db');
    expect(alertOf((await client.get('/console')).body)).toBeUndefined();

    const metrics = await metricsShowingResult(1);
    expect(metrics).toMatch(/^optgate_audit_verify_last_success_timestamp_seconds \d{10}/m);
  });

  it('the CLI (verify --db) records its result: the whole log, and the job continues from its end', async () => {
    const r = await run(CLI, ['audit', 'verify', '--db'], cliEnv(svc), 60_000);
    expect(r.stdout).toMatch(/RESULT: INTACT/);
    expect(r.code).toBe(0);
    const cli = await lastRun();
    expect(cli).toMatchObject({ ran_by: 'cli', result: 'intact', from_seq: 1, problem: null });
    expect(cli.records_checked).toBe(cli.to_seq);
    await someRecords(2);
    expect(await integrity(1_000_000).run('job')).toMatchObject({ result: 'intact', fromSeq: cli.to_seq + 1 });
  }, 90_000);

  it('support: no integrity page, and no banner while all is well', async () => {
    const support = await staffClient(svc, uniqueId('bob'), 'support');
    expect((await support.get('/console/integrity')).status).toBe(403);
    const form = await support.get('/console');
    expect(alertOf(form.body)).toBeUndefined();
    expect((await support.post('/console/integrity/verify', { _csrf: csrfOf(form.body)! })).status).toBe(403);
  });
});

describe('a tampered record', () => {
  it('the next run records it broken, with the first problem; the banner is on every console page', async () => {
    const from = (await integrity(1).startPoint())!.seq;
    const accountId = await createAccount(svc, admin);
    const { rows } = await svc.sql.query(
      `select seq::int, content from audit_records where seq > $1 and account_id = $2 order by seq limit 1`,
      [from, accountId],
    );
    const target = rows[0] as { seq: number; content: string };
    expect(target.content).toContain('"change":"opened"');
    await asAttacker(svc.databaseUrl, (c) =>
      c.query('update audit_records set content = $1 where seq = $2', [
        target.content.replace('"change":"opened"', '"change":"updated"'),
        target.seq,
      ]),
    );

    const compliance = await staffClient(svc, uniqueId('carol'), 'compliance');
    const broken = await verifyNow(compliance);
    expect(broken).toMatchObject({ result: 'broken', from_seq: from + 1, problem_seq: target.seq, ran_by: 'console' });
    expect(broken.problem).toBe(`seq ${target.seq}: altered: the content does not match its hash`);

    for (const path of ['/console', '/console/integrity', '/console/no-such-page']) {
      const banner = alertOf((await compliance.get(path)).body);
      expect([path, textOf(banner ?? '')]).toEqual([
        path,
        expect.stringContaining(`Verification failed: the audit log has a problem at record ${target.seq}`),
      ]);
      expect(banner).toContain('<a href="/console/integrity">');
    }
    const page = textOf((await compliance.get('/console/integrity')).body);
    expect(page).toContain('Result Problem found');
    expect(page).toContain(`Problem seq ${target.seq}: altered: the content does not match its hash`);

    // Support sees the warning, without the way to the page it may not open.
    const support = await staffClient(svc, uniqueId('dave'), 'support');
    const supportBanner = alertOf((await support.get('/console')).body);
    expect(textOf(supportBanner ?? '')).toContain('Verification failed');
    expect(supportBanner).not.toContain('/console/integrity');

    // A failure stays: the next run starts again before it and finds it again; nothing moves past it.
    await someRecords(2);
    expect(await integrity(1_000_000).run('job')).toMatchObject({
      result: 'broken',
      fromSeq: from + 1,
      problemSeq: target.seq,
    });
    expect((await integrity(1).startPoint())!.seq).toBe(from);
    await metricsShowingResult(0);

    // The CLI finds it too, and records it.
    const r = await run(CLI, ['audit', 'verify', '--db'], cliEnv(svc), 60_000);
    expect(r.stdout).toMatch(new RegExp(`RESULT: TAMPERED: first bad sequence ${target.seq}`));
    expect(r.code).toBe(1);
    expect(await lastRun()).toMatchObject({ ran_by: 'cli', result: 'broken', from_seq: 1, problem_seq: target.seq });
  }, 90_000);

  it("a run starts only where the recorded hash is the log's: the first record must follow it", async () => {
    const start = (await integrity(1).startPoint())!;
    // The recorded end of the last intact run and the log disagree (either may have been altered).
    await asAttacker(svc.databaseUrl, (c) =>
      c.query(`update audit_verifications set to_hash = $1 where result = 'intact' and to_seq = $2`, [
        'f'.repeat(64),
        start.seq,
      ]),
    );
    const r = await integrity(1_000_000).run('job');
    expect(r).toMatchObject({ result: 'broken', fromSeq: start.seq + 1, problemSeq: start.seq + 1 });
    expect(r.problem).toBe(
      `seq ${start.seq + 1}: broken link: the first record does not follow the last one verified before ` +
        `(seq ${start.seq})`,
    );
  });
});

describe('late', () => {
  let late: TestService;
  /** The late service's clock runs this far ahead of real time. */
  let ahead = 0;
  /** Signed in before the clock moves on (a sign-in link must be fresh at the service's time); sessions idle a day. */
  let compliance: ConsoleClient;
  let support: ConsoleClient;
  beforeAll(async () => {
    // No workers: nothing signs tree heads nor verifies.
    late = await startTestService(
      { CONSOLE_SIGNIN_PER_MINUTE: '1000', CONSOLE_IDLE_SECONDS: '86400' },
      { clock: () => new Date(Date.now() + ahead) },
    );
    await createAccount(late, await adminToken(late));
    compliance = await staffClient(late, uniqueId('erin'), 'compliance');
    support = await staffClient(late, uniqueId('frank'), 'support');
  }, 60_000);
  afterAll(() => late?.stop());

  const bannerOn = async (client: ConsoleClient, path = '/console') =>
    textOf(alertOf((await client.get(path)).body) ?? '');

  it('fresh records and no verification yet: no banner', async () => {
    expect(await bannerOn(compliance)).toBe('');
    expect(await bannerOn(support)).toBe('');
  });

  it('three hours on: the signed head (stopped signer) and the verification (never run) are late', async () => {
    ahead = 3 * 3_600_000;
    const text = await bannerOn(compliance);
    expect(text).toContain('Verification is late: the audit log has never been verified');
    expect(text).toMatch(/The signed head is late: \d+ records of the audit log, the oldest written 3 hours ago/);
    expect(await bannerOn(compliance, '/console/integrity')).toContain('The signed head is late');
    expect(await bannerOn(support)).toContain('Verification is late');
    const page = textOf((await compliance.get('/console/integrity')).body);
    expect(page).toContain('No head has been signed yet.');
    expect(page).toContain('The log has not been verified yet (late)');
  });

  it('the last intact verification too old: late; a recent one: not', async () => {
    const insert = (finishedAt: Date) =>
      late.sql.query(
        `insert into audit_verifications (started_at, finished_at, from_seq, to_seq, records_checked, result, ran_by)
         values ($1, $1, 1, 0, 0, 'intact', 'job')`,
        [finishedAt],
      );
    await insert(new Date(Date.now() + ahead - 4 * 3_600_000));
    expect(await bannerOn(compliance)).toContain(
      'Verification is late: the audit log was last verified 4 hours ago, and should be every 1 hour.',
    );
    await insert(new Date(Date.now() + ahead - 60_000));
    const text = await bannerOn(compliance);
    expect(text).not.toContain('Verification is late');
    expect(text).toContain('The signed head is late');
  });
});
