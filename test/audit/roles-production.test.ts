import { randomBytes } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { prepareDatabase, RUNTIME_ROLE } from '../../src/platform/db/roles';
import { createLogger } from '../../src/platform/logger';
import { dropDatabase } from '../support/database';
import { TEST_DB_PREFIX } from '../support/harness';

/**
 * The production path of the database roles: migrations as a separately configured owner
 * (DATABASE_OWNER_URL) that can log in, the runtime role granted; a start without the owner's URL
 * refuses pending migrations, and refuses to run as a superuser or as the owner.
 */

const name = TEST_DB_PREFIX + randomBytes(6).toString('hex');
const OWNER = `optgate_test_owner_${randomBytes(3).toString('hex')}`;
const url = (user: string) => `postgres://${user}@localhost:5432/${name}`;
const logger = createLogger('silent');
const me = os.userInfo().username;
let admin: pg.Client;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: `postgres://${me}@localhost:5432/postgres` });
  await admin.connect();
  await admin.query(`create role ${OWNER} login`);
  await admin.query(`create database ${name} owner ${OWNER}`);
  // The runtime role exists on this cluster (development starts create it); production creates it once.
  await admin.query(`do $$ begin create role ${RUNTIME_ROLE} login; exception when duplicate_object then null; end $$`);
});
afterAll(async () => {
  await dropDatabase(url(me));
  await admin.query(`drop owned by ${OWNER}`).catch(() => undefined);
  await admin.query(`drop role if exists ${OWNER}`);
  await admin.end();
});

it('production without the owner URL and migrations pending: refused, naming the fix', async () => {
  await expect(prepareDatabase({ url: url(RUNTIME_ROLE), env: 'production' }, logger)).rejects.toThrow(
    /migrations pending .*DATABASE_OWNER_URL/,
  );
});

it('with DATABASE_OWNER_URL: migrated as that owner, the runtime role granted; a start without it', async () => {
  const migrated = await prepareDatabase({ url: url(RUNTIME_ROLE), ownerUrl: url(OWNER), env: 'production' }, logger);
  expect(migrated.migrated.length).toBeGreaterThan(5);
  expect(migrated.runtimeUrl).toBe(url(RUNTIME_ROLE));
  const c = new pg.Client({ connectionString: url(me) });
  await c.connect();
  try {
    const owners = await c.query(`select distinct tableowner from pg_tables where schemaname = 'public'`);
    expect(owners.rows.map((r) => r.tableowner)).toEqual([OWNER]);
    const can = await c.query(
      `select has_table_privilege($1, 'audit_records', 'insert') as ins,
              has_table_privilege($1, 'audit_records', 'delete') as del`,
      [RUNTIME_ROLE],
    );
    expect(can.rows[0]).toEqual({ ins: true, del: false });
  } finally {
    await c.end();
  }
  // A later start without the owner: nothing pending, a runtime role that is neither superuser nor owner.
  await expect(prepareDatabase({ url: url(RUNTIME_ROLE), env: 'production' }, logger)).resolves.toEqual({
    runtimeUrl: url(RUNTIME_ROLE),
    migrated: [],
  });
});

it('production refuses to run as a superuser or as the owner of the log', async () => {
  await expect(prepareDatabase({ url: url(me), env: 'production' }, logger)).rejects.toThrow(
    /is a superuser: it could rewrite history/,
  );
  await expect(prepareDatabase({ url: url(OWNER), env: 'production' }, logger)).rejects.toThrow(
    /is the owner of the audit log/,
  );
});
