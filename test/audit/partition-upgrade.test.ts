import { readdirSync } from 'node:fs';
import path from 'node:path';
import { type Migration, Migrator } from 'kysely';
import pg from 'pg';
import { createDb, ensureDatabase } from '../../src/platform/db/database';
import { createLogger } from '../../src/platform/logger';
import { deleteRedisPrefix, tempDir, writeFormat1Chain } from '../support/audit';
import { dropDatabase } from '../support/database';
import { adminToken, createAccount, decide } from '../support/fixtures';
import { startTestService, type TestService, testConfig, testKeysDir } from '../support/harness';
import { CLI, ROOT, run } from '../support/processes';

/**
 * A database written before the log was partitioned (migration 0011) keeps its records: they
 * become the `legacy` partitions, the chain goes on in monthly ones after them, the whole log
 * verifies, and once the legacy records are past the retention they are archived like any month.
 */

const ROWS = 500;
const config = testConfig();
const url = config.db.url;
let svc: TestService | undefined;
let dir: string;

afterAll(async () => {
  await svc?.stop();
  if (!svc) await dropDatabase(url);
  await deleteRedisPrefix(config.redis.prefix);
});

/** Migrations up to and including `last`, from the repository's folder. */
async function migrateThrough(last: string): Promise<void> {
  const folder = path.join(ROOT, 'migrations');
  const names = readdirSync(folder)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.basename(f, '.ts'))
    .filter((n) => n <= last);
  const provider = {
    getMigrations: async () =>
      Object.fromEntries(names.map((n) => [n, require(path.join(folder, n)) as Migration])) as Record<
        string,
        Migration
      >,
  };
  await ensureDatabase(url);
  const { db } = createDb({ ...config.db, url }, createLogger('silent'));
  try {
    const { error } = await new Migrator({ db, provider }).migrateToLatest();
    if (error) throw error;
  } finally {
    await db.destroy();
  }
}

it('records from before partitioning: the legacy partition; the chain goes on; legacy is archived', async () => {
  await migrateThrough('0010_merkle_tree');
  const sql = new pg.Pool({ connectionString: url, max: 1 });
  try {
    await writeFormat1Chain(sql, ROWS, '2025-01-15T10:00:00.000Z');
  } finally {
    await sql.end();
  }

  // The service migrates the rest (0011) as it starts, and goes on writing.
  dir = await tempDir();
  svc = await startTestService(
    { DATABASE_URL: url, REDIS_PREFIX: config.redis.prefix, RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '200' },
    {},
  );
  const { rows: parts } = await svc.sql.query(
    `select tableoid::regclass::text as part, count(*)::int as n from audit_records group by 1 order by 1`,
  );
  expect(parts).toEqual([{ part: 'audit_records_legacy', n: ROWS }]);
  const settings = await svc.sql.query(`select to_char(legacy_until, 'YYYY-MM-DD') as until from audit_settings`);
  expect(settings.rows[0].until).toBe('2025-02-01');

  const token = await adminToken(svc);
  const account = await createAccount(svc, token);
  await decide(svc, token, { accountId: account, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
  const month = new Date().toISOString().slice(0, 7).replace('-', '');
  const { rows: after } = await svc.sql.query(
    'select tableoid::regclass::text as part from audit_records where seq > $1',
    [ROWS],
  );
  expect(after.map((r) => r.part)).toContain(`audit_records_p${month}`);

  const cliEnv = { DATABASE_URL: url, KEYS_DIR: testKeysDir, LOG_LEVEL: 'silent', AUDIT_ARCHIVE_DIR: dir };
  const verified = await run(CLI, ['audit', 'verify', '--db'], cliEnv, 60_000);
  expect(verified.stdout).toMatch(/every hash recomputed from the genesis/);
  expect(verified.stdout).toMatch(/RESULT: INTACT/);

  // January 2025 is long past a 12-month retention: the legacy partition is archived and dropped.
  const archived = await run(CLI, ['audit', 'archive'], { ...cliEnv, AUDIT_RETENTION_MONTHS: '12' }, 60_000);
  expect(archived.stderr).toBe('');
  expect(archived.stdout).toMatch(new RegExp(`legacy\\s+${ROWS} records`));
  const { rows: left } = await svc.sql.query(
    `select count(*)::int as n from pg_class where relname like 'audit_%_legacy'`,
  );
  expect(left[0].n).toBe(0);
  const whole = await run(CLI, ['audit', 'verify', '--db', '--archives', dir], cliEnv, 60_000);
  expect(whole.stdout).toMatch(/archive legacy\s+500 records \(seq 1 … 500\), intact/);
  expect(whole.stdout).toMatch(/RESULT: INTACT/);
  const online = await run(CLI, ['audit', 'verify', '--db'], cliEnv, 60_000);
  expect(online.stdout).toMatch(/from the last archived record \(seq 500\)/);
  expect(online.stdout).toMatch(/RESULT: INTACT/);
}, 120_000);
