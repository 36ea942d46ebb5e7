import pg from 'pg';
import { OWNER_ROLE, RUNTIME_PRIVILEGES, RUNTIME_ROLE } from '../../src/platform/db/roles';
import { asAttacker, auditRows, checkpointAtHead, deleteRedisPrefix, verifyDb } from '../support/audit';
import { adminToken, createAccount, decide } from '../support/fixtures';
import { startTestService, type TestService, testKeysDir } from '../support/harness';

/**
 * The service connects as a runtime role that cannot rewrite history: every way of doing so is
 * refused by PostgreSQL, by name. A superuser still can; then `audit verify --db` reports the
 * records that the latest signed head vouches for and that are gone.
 */

let svc: TestService;
let runtimeUrl: string;
/** This month's partitions (`YYYYMM`), which the service writes in. */
const MONTH = new Date().toISOString().slice(0, 7).replace('-', '');

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '1000' });
  const u = new URL(svc.databaseUrl);
  u.username = RUNTIME_ROLE;
  runtimeUrl = u.toString();
  const admin = await adminToken(svc);
  const account = await createAccount(svc, admin);
  for (let i = 0; i < 5; i++)
    await decide(svc, admin, { accountId: account, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
});
afterAll(async () => {
  await svc.stop();
  await deleteRedisPrefix(svc.config.redis.prefix);
});

it('the service connects as the runtime role; the tables belong to the owner', async () => {
  const { rows } = await svc.sql.query(
    `select distinct usename from pg_stat_activity where datname = current_database() and application_name = 'optgate'`,
  );
  expect(rows.map((r) => r.usename)).toEqual([RUNTIME_ROLE]);
  const owners = await svc.sql.query(`select distinct tableowner from pg_tables where schemaname = 'public'`);
  expect(owners.rows.map((r) => r.tableowner)).toEqual([OWNER_ROLE]);
  const role = await svc.sql.query(
    'select rolsuper, rolcreaterole, rolcreatedb, rolbypassrls from pg_roles where rolname = $1',
    [RUNTIME_ROLE],
  );
  expect(role.rows[0]).toEqual({ rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolbypassrls: false });
});

it('every table has a deliberate list of runtime privileges, and the role has exactly those', async () => {
  const { rows } = await svc.sql.query(
    `select c.relname as tablename, c.relispartition as partition from pg_class c
     join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`,
  );
  expect(rows.filter((r) => !r.partition).map((r) => r.tablename)).toEqual(Object.keys(RUNTIME_PRIVILEGES).sort());
  // The log's monthly partitions are reached through their parent only: no privilege of their own.
  const partitions = rows.filter((r) => r.partition).map((r) => r.tablename);
  expect(partitions.length).toBeGreaterThanOrEqual(3);
  for (const table of partitions) {
    const { rows: has } = await svc.sql.query(
      `select bool_or(has_table_privilege($1, $2, p)) as any from unnest(array['select', 'insert', 'update', 'delete',
       'truncate', 'references', 'trigger']) p`,
      [RUNTIME_ROLE, table],
    );
    expect({ table, any: has[0].any }).toEqual({ table, any: false });
  }
  for (const [table, privileges] of Object.entries(RUNTIME_PRIVILEGES)) {
    const granted = privileges.split(', ');
    for (const p of ['select', 'insert', 'update', 'delete', 'truncate', 'references', 'trigger']) {
      const { rows: has } = await svc.sql.query('select has_table_privilege($1, $2, $3) as ok', [
        RUNTIME_ROLE,
        table,
        p,
      ]);
      expect({ table, p, ok: has[0].ok }).toEqual({ table, p, ok: granted.includes(p) });
    }
  }
});

describe('as the runtime role, each way of rewriting history is refused', () => {
  const attempts: [string, string, RegExp][] = [
    ['disable the append-only triggers', 'alter table audit_records disable trigger user', /must be owner/],
    ['skip triggers for the session', 'set session_replication_role = replica', /permission denied/],
    [
      'delete the newest records',
      'delete from audit_decisions where seq = (select max(seq) from audit_decisions)',
      /permission denied/,
    ],
    ['change an outcome', `update audit_decisions set verdict = null`, /permission denied/],
    ['change a record', `update audit_records set outcome = 'allow'`, /permission denied/],
    ['truncate the verdicts', 'truncate audit_verdicts', /permission denied/],
    ['delete consent history', 'delete from consent_events', /permission denied/],
    ['delete a checkpoint', 'delete from audit_checkpoints', /permission denied/],
    ['rewind the head', 'update audit_head set seq = seq - 1', /the head only moves forward/],
    ['rewrite the head in place', `update audit_head set hash = repeat('f', 64)`, /the head only moves forward/],
    ['delete the head', 'delete from audit_head', /permission denied/],
    ['drop the log', 'drop table audit_records', /must be owner/],
    ['detach a month', `alter table audit_records detach partition audit_records_p${MONTH}`, /must be owner/],
    ['drop a month', `drop table audit_verdicts_p${MONTH}`, /must be owner/],
    ['shorten the retention', 'update audit_settings set retention_months = 1', /permission denied/],
    [
      'drop a month through the partition function',
      `select optgate_drop_audit_partition(to_char(now(), 'YYYY-MM'))`,
      /no archive is registered/,
    ],
    [
      'replace a trigger function',
      'create or replace function optgate_refuse_change() returns trigger language plpgsql ' +
        'as $$ begin return new; end $$',
      /must be owner|permission denied/,
    ],
    ['create a table', 'create table x (id int)', /permission denied for schema public/],
    ['become a superuser', `alter role ${RUNTIME_ROLE} superuser`, /must be superuser/],
    ['take the owner role', `set role ${OWNER_ROLE}`, /permission denied/],
  ];
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: runtimeUrl });
    await client.connect();
  });
  afterAll(() => client.end());

  it.each(attempts)('%s: refused', async (_what, statement, message) => {
    await expect(client.query(statement)).rejects.toThrow(message);
    const { rows } = await client.query('select current_user as u');
    expect(rows[0].u).toBe(RUNTIME_ROLE);
  });

  it('the log is as it was', async () => {
    const { code, stdout } = await verifyDb(svc.databaseUrl, testKeysDir);
    expect(stdout).toMatch(/RESULT: INTACT/);
    expect(code).toBe(0);
  });
});

it('a superuser deletes the newest records, rewinds the head: verify --db reports the signed head', async () => {
  const signed = await checkpointAtHead(svc.sql);
  const rows = await auditRows(svc.databaseUrl, (r) => r.seq <= signed);
  const keep = rows[rows.length - 3]!;
  await asAttacker(svc.databaseUrl, async (c) => {
    await c.query('delete from audit_decisions where seq > $1', [keep.seq]);
    await c.query('delete from audit_records where seq > $1', [keep.seq]);
    await c.query('update audit_head set seq = $1, hash = $2', [keep.seq, keep.hash]);
  });
  const { code, stdout } = await verifyDb(svc.databaseUrl, testKeysDir);
  expect(stdout).toMatch(new RegExp(`seq ${signed}: signed, but there is no such record`));
  expect(stdout).toMatch(/RESULT: TAMPERED/);
  expect(code).toBe(1);
});
