import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Logger } from '../logger';
import { type Database, ensureDatabase, quoteIdent } from './database';
import { migrateToLatest, pendingMigrations } from './migrator';

/**
 * Two database roles. The **owner** owns every table; migrations run as it. The **runtime role**
 * is what the service connects as: it may append to the audit log and the consent history but not
 * change or delete them, and, being neither the owner nor a superuser, it cannot disable the
 * triggers that refuse it (`ALTER TABLE … DISABLE TRIGGER`) nor set `session_replication_role`.
 */
export const OWNER_ROLE = 'optgate_owner';
export const RUNTIME_ROLE = 'optgate_app';

/** What the runtime role may do, table by table; nothing else. Every table of the schema is here (a test checks). */
export const RUNTIME_PRIVILEGES: Readonly<
  Record<keyof Database | 'kysely_migration' | 'kysely_migration_lock', string>
> = {
  accounts: 'select, insert, update',
  account_changes: 'select, insert, delete',
  // Append-only: a trigger refuses updates and deletes.
  account_plan_changes: 'select, insert',
  consent_events: 'select, insert',
  consent_state: 'select, insert, update, delete',
  // Append-only: a receipt is kept as it was signed (triggers refuse changes too).
  consent_receipts: 'select, insert',
  audit_records: 'select, insert',
  audit_decisions: 'select, insert',
  audit_verdicts: 'select, insert',
  // Moved forward only: a trigger refuses a head that goes backwards.
  audit_head: 'select, update',
  audit_checkpoints: 'select, insert',
  audit_tree_nodes: 'select, insert',
  audit_exports: 'select, insert, update',
  audit_export_chunks: 'select, insert, delete',
  // The owner writes the retention when it migrates; the runtime role may not shorten it.
  audit_settings: 'select',
  audit_archives: 'select, insert',
  audit_archive_edge: 'select, insert',
  // Append-only: a verification's result is kept as recorded (triggers refuse changes too).
  audit_verifications: 'select, insert',
  // Counts for the console's charts, and how far the log has been counted (the rollup job).
  audit_rollup_hourly: 'select, insert, update',
  audit_rollup_state: 'select, update',
  // Append-only: what was given to a subscriber is never rewritten (triggers refuse it too).
  notice_deliveries: 'select, insert',
  // A deleted endpoint keeps its row (deleted_at): its deliveries stay listed.
  webhook_endpoints: 'select, insert, update',
  webhook_deliveries: 'select, insert, update',
  webhook_cursor: 'select, update',
  webhook_expiring: 'select, insert',
  kysely_migration: 'select',
  kysely_migration_lock: 'select',
};

export interface DatabaseSettings {
  /** What the service connects as. */
  readonly url: string;
  /** The owner's connection, for migrations; when absent outside production, `url` may be an administrator's. */
  readonly ownerUrl?: string;
  readonly env: 'development' | 'production' | 'test';
  /** Months of audit log kept online, written by the owner for the partition functions (migration 0011). */
  readonly auditRetentionMonths?: number;
}

/**
 * Makes the database ready for a start and returns the URL the service connects with:
 *
 * - `ownerUrl` given: migrate as the owner, grant the runtime role (the user of `url`) its privileges.
 * - otherwise, outside production, with `url` naming an administrator (superuser or CREATEROLE, as
 *   in development and CI): create both roles if missing (the runtime role with `url`'s password),
 *   the database owned by the owner, migrate as the owner, grant; connect as the runtime role.
 * - otherwise (`url` is not an administrator): in production, refuse to start with migrations
 *   pending; elsewhere, migrate with `url` itself, and warn that it owns the log.
 *
 * In production the runtime role must be neither a superuser nor the owner of the log.
 */
export async function prepareDatabase(
  s: DatabaseSettings,
  logger: Logger,
): Promise<{ runtimeUrl: string; migrated: string[] }> {
  if (s.ownerUrl) {
    await ensureDatabase(s.ownerUrl);
    const runtimeUser = decodeURIComponent(new URL(s.url).username);
    const migrated = await asOwner(s.ownerUrl, undefined, (db) => migrateAndGrant(db, runtimeUser, s));
    await checkRuntimeRole(s, logger);
    return { runtimeUrl: s.url, migrated };
  }
  if (s.env !== 'production' && (await isAdministrator(s.url))) {
    const runtimeUrl = new URL(s.url);
    runtimeUrl.username = RUNTIME_ROLE;
    await bootstrapRoles(s.url, runtimeUrl.password);
    const migrated = await asOwner(s.url, OWNER_ROLE, (db) => migrateAndGrant(db, RUNTIME_ROLE, s));
    return { runtimeUrl: runtimeUrl.toString(), migrated };
  }
  if (s.env === 'production') {
    const pending = await withDb(s.url, (db) => pendingMigrations(db));
    if (pending.length)
      throw new Error(
        `migrations pending (${pending.join(', ')}): run them as the owner (npm run migrate with DATABASE_OWNER_URL)`,
      );
    await checkRuntimeRole(s, logger);
    return { runtimeUrl: s.url, migrated: [] };
  }
  await ensureDatabase(s.url);
  const migrated = await withDb(s.url, async (db) => {
    const names = await migrateToLatest(db);
    await writeSettings(db, s);
    return names;
  });
  logger.warn('the service connects as the owner of the audit log, which could rewrite it: set DATABASE_OWNER_URL');
  return { runtimeUrl: s.url, migrated };
}

/** Refuses (production) or warns about a runtime role that could rewrite history. */
async function checkRuntimeRole(s: DatabaseSettings, logger: Logger): Promise<void> {
  const { rows } = await withDb(s.url, (db) =>
    sql<{ superuser: boolean; owner: boolean }>`
      select r.rolsuper as superuser,
             coalesce(pg_has_role(current_user, t.tableowner, 'USAGE'), false) as owner
      from pg_roles r left join pg_tables t on t.schemaname = 'public' and t.tablename = 'audit_records'
      where r.rolname = current_user`.execute(db),
  );
  const role = rows[0];
  if (!role?.superuser && !role?.owner) return;
  const what = role.superuser ? 'a superuser' : 'the owner of the audit log';
  const problem = `the runtime role (DATABASE_URL) is ${what}: it could rewrite history`;
  if (s.env === 'production') throw new Error(`${problem}; connect as a role with only the runtime privileges`);
  logger.warn(problem);
}

/** What only the owner may set: the audit log's retention (the partition functions refuse to drop younger months). */
async function writeSettings(db: Kysely<Database>, s: DatabaseSettings): Promise<void> {
  if (s.auditRetentionMonths) {
    await db
      .updateTable('audit_settings')
      .set({ retention_months: s.auditRetentionMonths })
      .where('id', '=', 1)
      .execute();
  }
}

async function migrateAndGrant(db: Kysely<Database>, runtimeRole: string, s: DatabaseSettings): Promise<string[]> {
  const migrated = await migrateToLatest(db);
  await writeSettings(db, s);
  // Instances start together: one grants at a time (GRANT on one object concurrently can fail).
  await db.transaction().execute(async (tx) => {
    await sql`select pg_advisory_xact_lock(hashtextextended('optgate:grants', 0))`.execute(tx);
    const role = sql.raw(quoteIdent(runtimeRole));
    await sql`grant usage on schema public to ${role}`.execute(tx);
    for (const [table, privileges] of Object.entries(RUNTIME_PRIVILEGES)) {
      const t = sql.raw(quoteIdent(table));
      await sql`revoke all on ${t} from ${role}`.execute(tx);
      await sql`grant ${sql.raw(privileges)} on ${t} to ${role}`.execute(tx);
    }
    await sql`grant usage, select on all sequences in schema public to ${role}`.execute(tx);
  });
  return migrated;
}

async function isAdministrator(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl(url), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ admin: boolean }>(
      'select rolsuper or rolcreaterole as admin from pg_roles where rolname = current_user',
    );
    return rows[0]?.admin === true;
  } finally {
    await client.end();
  }
}

/**
 * Development and CI: the two roles (the owner cannot log in; migrations reach it by SET ROLE),
 * and the database, owned by the owner, with whatever an earlier start created handed over to it.
 */
async function bootstrapRoles(url: string, runtimePassword: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl(url), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query('begin');
    await client.query(`select pg_advisory_xact_lock(hashtextextended('optgate:roles', 0))`);
    // Created unless present; also by whoever got there first outside the lock (an operator, a concurrent script).
    for (const create of [`create role ${OWNER_ROLE} nologin`, `create role ${RUNTIME_ROLE} login`]) {
      await client.query(
        `do $$ begin ${create}; exception when duplicate_object or unique_violation then null; end $$`,
      );
    }
    // A CREATEROLE administrator (not a superuser) takes the owner's role by membership.
    await client.query(`grant ${OWNER_ROLE} to current_user`);
    await client.query(
      `alter role ${RUNTIME_ROLE} nosuperuser nocreatedb nocreaterole nobypassrls ${
        runtimePassword ? `password ${quoteLiteral(decodeURIComponent(runtimePassword))}` : ''
      }`,
    );
    await client.query('commit');
  } finally {
    await client.end();
  }
  await ensureDatabase(url);
  await withDb(url, async (db) => {
    const name = decodeURIComponent(new URL(url).pathname.slice(1));
    await sql`alter database ${sql.raw(quoteIdent(name))} owner to ${sql.raw(OWNER_ROLE)}`.execute(db);
    // A database an earlier start created before the roles existed: its objects go to the owner.
    const owner = sql.raw(quoteLiteral(OWNER_ROLE));
    await sql`
      do $$ declare r record; begin
        for r in select c.oid::regclass as name, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm') 
                   and pg_get_userbyid(c.relowner) <> ${owner}
        loop execute format('alter table %s owner to ${sql.raw(OWNER_ROLE)}', r.name); end loop;
        for r in select p.oid::regprocedure as name from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'public' and pg_get_userbyid(p.proowner) <> ${owner}
        loop execute format('alter function %s owner to ${sql.raw(OWNER_ROLE)}', r.name); end loop;
      end $$`.execute(db);
  });
}

/** Runs `work` on one connection as the owner: `url` is the owner's own, or an administrator's that takes the role. */
async function asOwner<T>(url: string, setRole: string | undefined, work: (db: Kysely<Database>) => Promise<T>) {
  const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined);
  // On every connection the pool opens (a lost one is replaced), before any other query on it.
  if (setRole)
    pool.on('connect', (client) => void client.query(`set role ${quoteIdent(setRole)}`).catch(() => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    if (setRole) {
      const { rows } = await sql<{ role: string }>`select current_user as role`.execute(db);
      if (rows[0]?.role !== setRole) throw new Error(`could not take the role ${setRole}`);
    }
    return await work(db);
  } finally {
    await db.destroy();
  }
}

async function withDb<T>(url: string, work: (db: Kysely<Database>) => Promise<T>): Promise<T> {
  return asOwner(url, undefined, work);
}

function adminUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/postgres';
  return u.toString();
}

const quoteLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;
