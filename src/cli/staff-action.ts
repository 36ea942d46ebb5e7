import { appendWithin, type StaffActionData, staffActionRecord } from '../audit';
import type { AppConfig } from '../platform/config';
import { createDb } from '../platform/db/database';
import { prepareDatabase } from '../platform/db/roles';
import { createLogger } from '../platform/logger';

/** A CLI command's staff action, appended to the audit chain (the database prepared and migrated first if needed). */
export async function recordStaffAction(
  config: AppConfig,
  action: StaffActionData,
  accountId: string | null = null,
): Promise<void> {
  const logger = createLogger('warn');
  const { runtimeUrl } = await prepareDatabase({ ...config.db, env: config.env }, logger);
  const { db } = createDb({ ...config.db, url: runtimeUrl }, logger);
  try {
    await db.transaction().execute((trx) => appendWithin(trx, [staffActionRecord(action, accountId)], new Date()));
  } finally {
    await db.destroy();
  }
}
