import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { AccountPlanChangeTable, AccountTable } from '../../accounts/account.table';
import type {
  AuditArchiveEdgeTable,
  AuditArchiveTable,
  AuditCheckpointTable,
  AuditDecisionTable,
  AuditExportChunkTable,
  AuditExportTable,
  AuditHeadTable,
  AuditRecordTable,
  AuditRollupHourlyTable,
  AuditRollupStateTable,
  AuditSettingsTable,
  AuditTreeNodeTable,
  AuditVerdictTable,
  AuditVerificationTable,
} from '../../audit/audit.table';
import type { AccountChangeTable } from '../../cache/cache.table';
import type { ConsentEventTable, ConsentReceiptTable, ConsentStateTable } from '../../consent/consent.table';
import type { NoticeDeliveryTable } from '../../notices/notice.table';
import type {
  WebhookCursorTable,
  WebhookDeliveryTable,
  WebhookEndpointTable,
  WebhookExpiringTable,
} from '../../webhooks/webhook.table';
import type { Logger } from '../logger';

export interface Database {
  accounts: AccountTable;
  account_changes: AccountChangeTable;
  account_plan_changes: AccountPlanChangeTable;
  consent_events: ConsentEventTable;
  consent_state: ConsentStateTable;
  consent_receipts: ConsentReceiptTable;
  audit_records: AuditRecordTable;
  audit_decisions: AuditDecisionTable;
  audit_verdicts: AuditVerdictTable;
  audit_head: AuditHeadTable;
  audit_checkpoints: AuditCheckpointTable;
  audit_tree_nodes: AuditTreeNodeTable;
  audit_exports: AuditExportTable;
  audit_export_chunks: AuditExportChunkTable;
  audit_settings: AuditSettingsTable;
  audit_archives: AuditArchiveTable;
  audit_archive_edge: AuditArchiveEdgeTable;
  audit_verifications: AuditVerificationTable;
  audit_rollup_hourly: AuditRollupHourlyTable;
  audit_rollup_state: AuditRollupStateTable;
  notice_deliveries: NoticeDeliveryTable;
  webhook_endpoints: WebhookEndpointTable;
  webhook_deliveries: WebhookDeliveryTable;
  webhook_cursor: WebhookCursorTable;
  webhook_expiring: WebhookExpiringTable;
}

export type Db = Kysely<Database>;

export interface DbOptions {
  url: string;
  poolSize: number;
  statementTimeoutMs: number;
}

/**
 * Every query is bounded: a statement timeout on the server, a query timeout on the client
 * (for a server that stops answering) and a connect timeout. A bounded failure becomes a 503;
 * an unbounded wait would hold callers forever.
 */
export function createDb(options: DbOptions, logger: Logger): { db: Db; pool: pg.Pool } {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    connectionTimeoutMillis: options.statementTimeoutMs + 500,
    statement_timeout: options.statementTimeoutMs,
    // A server that stops answering (paused, a dead network path) cannot enforce its statement timeout.
    query_timeout: options.statementTimeoutMs + 500,
    idle_in_transaction_session_timeout: options.statementTimeoutMs * 5,
    application_name: 'optgate',
    // Every query of the service is a small indexed read or write: a parallel plan only adds its
    // workers' start-up (about 100 ms here) to what takes milliseconds.
    options: '-c max_parallel_workers_per_gather=0',
  });
  // A connection lost while idle, or while checked out between queries, must not crash the process (an
  // 'error' event without a listener would): the query that needed it fails, and is answered 503.
  const lost = (err: Error) =>
    logger.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'database connection lost');
  pool.on('error', lost);
  pool.on('connect', (client) => client.on('error', lost));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, pool };
}

/** Creates the database named in the URL when it does not exist yet (development, CI, tests). */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!name) throw new Error('DATABASE_URL names no database');
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) {
      await client.query(`create database ${quoteIdent(name)}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created meanwhile by another instance
      });
    }
  } finally {
    await client.end();
  }
}

/** Resolves when the database answers a query. */
export async function ping(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}

export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
