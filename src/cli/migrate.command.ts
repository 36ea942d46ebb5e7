import { loadConfig } from '../platform/config';
import { createDb, ensureDatabase } from '../platform/db/database';
import { migrateToLatest } from '../platform/db/migrator';
import { createLogger } from '../platform/logger';

export async function migrateCommand(): Promise<number> {
  const config = loadConfig();
  await ensureDatabase(config.db.url);
  const { db } = createDb(config.db, createLogger('warn'));
  try {
    const applied = await migrateToLatest(db);
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
    return 0;
  } finally {
    await db.destroy();
  }
}
