import { loadConfig } from '../platform/config';
import { prepareDatabase } from '../platform/db/roles';
import { createLogger } from '../platform/logger';

/** Migrates as the owner and grants the runtime role its privileges (see src/platform/db/roles.ts). */
export async function migrateCommand(): Promise<number> {
  const config = loadConfig();
  if (config.env === 'production' && !config.db.ownerUrl) {
    process.stderr.write('optgate: migrate: set DATABASE_OWNER_URL (the owner role migrations run as)\n');
    return 2;
  }
  const { migrated } = await prepareDatabase({ ...config.db, env: config.env }, createLogger('warn'));
  process.stdout.write(migrated.length ? `applied: ${migrated.join(', ')}\n` : 'database is up to date\n');
  return 0;
}
