import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { leafHash, verifyInclusion } from '../../src/audit/merkle';
import { RUNTIME_ROLE } from '../../src/platform/db/roles';
import { deleteRedisPrefix, tempDir, until } from '../support/audit';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService, testKeysDir } from '../support/harness';
import { CLI, run } from '../support/processes';

/**
 * Retention on real PostgreSQL: the log is partitioned by month; with a retention of one month,
 * `optgate audit archive` archives every month that ended before last month (file, signed manifest,
 * covering tree head), verifies each, and only then drops its partitions. `audit verify --db` then
 * checks the online log on its own (from the last archived record, the tree continued from the kept
 * frontier), and with `--archives` the archives and the online log as one log; proofs of online
 * records still verify, those of archived records are 410. The runtime role can drop nothing else.
 */

const DAY = 86_400_000;
/** The first instant of the month `offset` months from this one (UTC). */
const monthStart = (offset: number) => {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1));
};
const period = (d: Date) => d.toISOString().slice(0, 7);
/** Three months past the retention (archived), one within it (kept), and this one. */
const OLD = [-4, -3, -2].map((o) => new Date(monthStart(o).getTime() + 14 * DAY));
const KEPT = new Date(monthStart(-1).getTime() + 14 * DAY);

let svc: TestService;
let now: Date | undefined;
let dir: string;
let cliEnv: Record<string, string>;
let token: string;
let jwks: string;
const accounts: string[] = [];

/** Some of everything in a month: an account, consent events, single and batch decisions (verdict rows). */
async function writeMonth(at: Date) {
  now = at;
  const account = await createAccount(svc, token);
  accounts.push(account);
  const r = await putConsents(svc, token, account, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
  expect(r.status).toBe(200);
  for (let i = 0; i < 3; i++) {
    const d = await decide(svc, token, {
      accountId: account,
      purpose: 'ad_targeting',
      categories: ['web_browsing_history'],
    });
    expect(d.status).toBe(200);
  }
  const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
    token,
    body: {
      accountIds: [...accounts, 'nobody-1', 'nobody-2'],
      purpose: 'ad_targeting',
      categories: ['web_browsing_history'],
    },
  });
  expect(batch.status).toBe(200);
}

const signedHeadAt = async (seq: number) =>
  until('a tree head covering the head', async () => {
    const latest = await call(svc.url, 'GET', '/v1/audit/tree-heads/latest', { token });
    return latest.status === 200 && latest.body.treeSize >= seq ? latest.body : undefined;
  });
const headSeq = async () => Number((await svc.sql.query('select seq from audit_head')).rows[0].seq);

beforeAll(async () => {
  dir = await tempDir();
  const archiveDir = path.join(dir, 'archive');
  // The service keeps the default retention (its retention job, run at start, finds nothing to do); the CLI,
  // started with a retention of one month, writes that into the database as it migrates, then archives.
  svc = await startTestService(
    { AUDIT_ARCHIVE_DIR: archiveDir, RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '200' },
    { clock: () => now ?? new Date() },
  );
  cliEnv = {
    AUDIT_RETENTION_MONTHS: '1',
    // Every account closed by the time of archival has its id pseudonymised in the archives.
    AUDIT_PSEUDONYMISE_AFTER_DAYS: '0',
    AUDIT_ARCHIVE_DIR: archiveDir,
    DATABASE_URL: svc.databaseUrl,
    KEYS_DIR: testKeysDir,
    LOG_LEVEL: 'silent',
  };
  token = await adminToken(svc);
  for (const at of OLD) await writeMonth(at);
  await writeMonth(KEPT);
  // The account of the oldest month closes: archived, its records name it by a pseudonym only.
  await createAccount(svc, token, 'closed', accounts[0]);
  now = undefined;
  await writeMonth(new Date());
  jwks = path.join(dir, 'jwks.json');
  await writeFile(jwks, await (await fetch(`${svc.url}/.well-known/jwks.json`)).text());
}, 60_000);
afterAll(async () => {
  await svc.stop();
  await deleteRedisPrefix(svc.config.redis.prefix);
});

const partitions = async () =>
  (
    await svc.sql.query(
      `select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
       where i.inhparent = 'audit_verdicts'::regclass order by 1`,
    )
  ).rows.map((r) => r.relname as string);

let archivedThrough = 0;

it('the log is partitioned by month: each month written in has its partitions', async () => {
  const names = await partitions();
  for (const at of [...OLD, KEPT, new Date()])
    expect(names).toContain(`audit_verdicts_p${period(at).replace('-', '')}`);
  const { rows } = await svc.sql.query(
    `select tableoid::regclass::text as part, count(*)::int as n from audit_records group by 1 order by 1`,
  );
  expect(rows.length).toBeGreaterThanOrEqual(5);
});

it('audit archive: the months past the retention archived (file, manifest, tree head), verified, dropped', async () => {
  const before = await headSeq();
  await signedHeadAt(before);
  const r = await run(CLI, ['audit', 'archive'], cliEnv, 60_000);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  for (const at of OLD) expect(r.stdout).toContain(period(at));
  expect(r.stdout).not.toContain(period(KEPT));

  const files = await readdir(path.join(dir, 'archive'));
  for (const at of OLD) {
    const base = `optgate-audit-${period(at)}`;
    expect(files).toEqual(expect.arrayContaining([`${base}.ndjson`, `${base}.manifest.jws`, `${base}.tree-head.jws`]));
    const file = path.join(dir, 'archive', base);
    const verified = await run(
      CLI,
      ['audit', 'verify', `${file}.ndjson`, '--manifest', `${file}.manifest.jws`, '--jwks', jwks],
      {},
    );
    expect(verified.stdout).toMatch(/RESULT: INTACT/);
  }
  expect(files.some((f) => f.endsWith('.partial'))).toBe(false);

  // The closed account's id is in no archive (its records carry a pseudonym and the commitment); the others' are.
  const oldest = await readFile(path.join(dir, 'archive', `optgate-audit-${period(OLD[0]!)}.ndjson`), 'utf8');
  expect(oldest).not.toContain(accounts[0]!);
  expect(oldest).toMatch(/"accountId":"pseudonym:[0-9a-f]{32}"/);
  expect(oldest).toMatch(/"accountCommitment":"[0-9a-f]{64}"/);
  const newest = await readFile(path.join(dir, 'archive', `optgate-audit-${period(OLD[2]!)}.ndjson`), 'utf8');
  expect(newest).not.toContain(accounts[0]!);
  expect(newest).toContain(accounts[2]!);
  expect(r.stdout).toMatch(/\(\d+ pseudonymised\)/);
  // Online, the account keeps its id: only what leaves the database is pseudonymised.
  const onlineIds = await svc.sql.query('select count(*)::int as n from audit_verdicts where account_id = $1', [
    accounts[0],
  ]);
  expect(onlineIds.rows[0].n).toBeGreaterThan(0);

  // Gone from the database: the partitions and every record of those months; the months after them kept.
  const names = await partitions();
  for (const at of OLD) expect(names).not.toContain(`audit_verdicts_p${period(at).replace('-', '')}`);
  expect(names).toContain(`audit_verdicts_p${period(KEPT).replace('-', '')}`);
  const old = await svc.sql.query(
    `select (select count(*) from audit_records where recorded_at < $1)::int
          + (select count(*) from audit_decisions where recorded_at < $1)::int
          + (select count(*) from audit_verdicts where recorded_on < $1)::int as n`,
    [monthStart(-1)],
  );
  expect(old.rows[0].n).toBe(0);
  const { rows } = await svc.sql.query('select period, first_seq, last_seq, rows from audit_archives order by period');
  expect(rows.map((a) => a.period)).toEqual(OLD.map(period));
  expect(Number(rows[0].first_seq)).toBe(1);
  for (let i = 1; i < rows.length; i++) expect(Number(rows[i].first_seq)).toBe(Number(rows[i - 1].last_seq) + 1);
  archivedThrough = Number(rows[rows.length - 1].last_seq);
  const { rows: online } = await svc.sql.query('select min(seq)::int as first from audit_records');
  expect(online[0].first).toBeGreaterThan(archivedThrough);

  // Again: nothing left to do.
  const again = await run(CLI, ['audit', 'archive'], cliEnv, 60_000);
  expect(again.stdout).toMatch(/nothing to archive/);
}, 120_000);

it('verify --db checks the online log after the last archived record; with --archives, the whole log', async () => {
  const online = await run(CLI, ['audit', 'verify', '--db'], cliEnv, 60_000);
  expect(online.stdout).toMatch(/archives\s+3 archived months .* not read/);
  expect(online.stdout).toMatch(new RegExp(`from the last archived record \\(seq ${archivedThrough}\\)`));
  expect(online.stdout).toMatch(/RESULT: INTACT/);
  expect(online.code).toBe(0);

  const whole = await run(CLI, ['audit', 'verify', '--db', '--archives', path.join(dir, 'archive')], cliEnv, 60_000);
  expect(whole.stdout).toMatch(/records\s+\d+ \(seq 1 … /);
  for (const at of OLD) expect(whole.stdout).toMatch(new RegExp(`archive ${period(at)}\\s+\\d+ records .*intact`));
  expect(whole.stdout).toMatch(/every hash recomputed from the genesis/);
  expect(whole.stdout).toMatch(/RESULT: INTACT/);
  expect(whole.code).toBe(0);
}, 120_000);

it('proofs: an online record next to the archived ones still proves; an archived one is 410', async () => {
  const seq = await headSeq();
  const head = await signedHeadAt(seq);
  for (const s of [archivedThrough + 1, seq]) {
    const p = await call(svc.url, 'GET', `/v1/audit/proofs/inclusion?seq=${s}`, { token });
    expect(p.status).toBe(200);
    const ok = verifyInclusion(
      s - 1,
      head.treeSize,
      leafHash(p.body.recordHash),
      p.body.hashes.map((h: string) => Buffer.from(h, 'hex')),
      Buffer.from(head.rootHash, 'hex'),
    );
    expect(ok).toBe(true);
  }
  const gone = await call(svc.url, 'GET', `/v1/audit/proofs/inclusion?seq=${archivedThrough}`, { token });
  expect(gone.status).toBe(410);
  expect(gone.body.detail).toMatch(/archived/);
});

it('the log goes on after archival: new records, new tree heads, and the whole log still verifies', async () => {
  await writeMonth(new Date());
  // Past the next 64-record tile: the tree builder completes the tile that began with archived records.
  const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
    token,
    body: {
      accountIds: Array.from({ length: 150 }, (_, i) => `nobody-${i}`),
      purpose: 'ad_targeting',
      categories: ['web_browsing_history'],
    },
  });
  expect(batch.status).toBe(200);
  const head = await signedHeadAt(await headSeq());
  expect(head.treeSize).toBeGreaterThan(Math.ceil(archivedThrough / 64) * 64);
  const p = await call(svc.url, 'GET', `/v1/audit/proofs/inclusion?seq=${archivedThrough + 1}`, { token });
  expect(p.status).toBe(200);
  expect(
    verifyInclusion(
      archivedThrough,
      head.treeSize,
      leafHash(p.body.recordHash),
      p.body.hashes.map((h: string) => Buffer.from(h, 'hex')),
      Buffer.from(head.rootHash, 'hex'),
    ),
  ).toBe(true);
  for (const args of [['--db'], ['--db', '--archives', path.join(dir, 'archive')]]) {
    const verified = await run(CLI, ['audit', 'verify', ...args], cliEnv, 60_000);
    expect(verified.stdout).toMatch(/RESULT: INTACT/);
  }
}, 60_000);

it('a tampered or missing archive file is reported by verify --db --archives', async () => {
  const file = path.join(dir, 'archive', `optgate-audit-${period(OLD[1]!)}.ndjson`);
  const original = await readFile(file, 'utf8');
  await writeFile(file, original.replace('"outcome":"deny"', '"outcome":"allow"'));
  const tampered = await run(CLI, ['audit', 'verify', '--db', '--archives', path.join(dir, 'archive')], cliEnv, 60_000);
  expect(tampered.stdout).toMatch(new RegExp(`archive ${period(OLD[1]!)}\\s+FAILED`));
  expect(tampered.stdout).toMatch(/RESULT: TAMPERED/);
  expect(tampered.code).toBe(1);

  await rename(file, `${file}.moved`);
  const missing = await run(CLI, ['audit', 'verify', '--db', '--archives', path.join(dir, 'archive')], cliEnv, 60_000);
  expect(missing.stdout).toMatch(new RegExp(`archive ${period(OLD[1]!)}\\s+FAILED: cannot be read`));
  expect(missing.stdout).toMatch(/RESULT: TAMPERED/);
  expect(missing.code).toBe(1);
  await rename(`${file}.moved`, file);
  await writeFile(file, original);
  const restored = await run(CLI, ['audit', 'verify', '--db', '--archives', path.join(dir, 'archive')], cliEnv, 60_000);
  expect(restored.stdout).toMatch(/RESULT: INTACT/);
}, 60_000);

it('a record dated in an archived month is refused, not given a new partition', async () => {
  const u = new URL(svc.databaseUrl);
  u.username = RUNTIME_ROLE;
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    await expect(c.query('select optgate_audit_partition($1)', [OLD[0]])).rejects.toThrow(/is archived/);
  } finally {
    await c.end();
  }
});

it('the runtime role cannot drop a month within the retention, even with an archive registered for it', async () => {
  const u = new URL(svc.databaseUrl);
  u.username = RUNTIME_ROLE;
  const month = period(KEPT);
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    await c.query(
      `insert into audit_archives (period, rows, file, bytes, sha256, manifest, archived_at)
       values ($1, 0, 'x', 0, 'x', 'x', now())`,
      [month],
    );
    await expect(c.query('select optgate_drop_audit_partition($1)', [month])).rejects.toThrow(/within the retention/);
    await expect(c.query(`select optgate_drop_audit_partition('legacy')`)).rejects.toThrow(/no archive/);
  } finally {
    await c.end();
  }
  expect(await partitions()).toContain(`audit_verdicts_p${month.replace('-', '')}`);
});
