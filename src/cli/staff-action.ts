import { appendWithin, type StaffActionData, staffActionRecord } from '../audit';
import type { AppConfig } from '../platform/config';
import { createDb, ensureDatabase } from '../platform/db/database';
import { migrateToLatest } from '../platform/db/migrator';
import { createLogger } from '../platform/logger';

/** A CLI command's staff action, appended to the audit chain (the database is migrated first if needed). */
export async function recordStaffAction(
  config: AppConfig,
  action: StaffActionData,
  accountId: string | null = null,
): Promise<void> {
  await ensureDatabase(config.db.url);
  const { db } = createDb(config.db, createLogger('warn'));
  try {
    await migrateToLatest(db);
    await db.transaction().execute((trx) => appendWithin(trx, [staffActionRecord(action, accountId)], new Date()));
  } finally {
    await db.destroy();
  }
}
