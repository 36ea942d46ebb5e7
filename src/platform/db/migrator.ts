import { readdirSync } from 'node:fs';
import path from 'node:path';
import { type Migration, type MigrationProvider, Migrator } from 'kysely';
import { projectRoot } from '../config/project-root';
import type { Db } from './database';

/**
 * Migrations live in migrations/ (frozen, on Kysely<any>). They are loaded with require() so that
 * the same provider works for the built service (.js) and under jest (.ts).
 */
class FolderMigrationProvider implements MigrationProvider {
  constructor(private readonly folder: string) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const ext = path.extname(__filename);
    const migrations: Record<string, Migration> = {};
    for (const file of readdirSync(this.folder).sort()) {
      if (path.extname(file) !== ext || file.endsWith('.d.ts')) continue;
      migrations[path.basename(file, ext)] = require(path.join(this.folder, file)) as Migration;
    }
    return migrations;
  }
}

function migrationsFolder(): string {
  // Built: dist/src/platform/db → dist/migrations; source: src/platform/db → migrations.
  const built = path.join(__dirname, '..', '..', '..', 'migrations');
  return path.extname(__filename) === '.js' ? built : path.join(projectRoot(), 'migrations');
}

const migratorFor = (db: Db) => new Migrator({ db, provider: new FolderMigrationProvider(migrationsFolder()) });

/** The migrations not applied yet (reads only: a role that may not migrate can ask). */
export async function pendingMigrations(db: Db): Promise<string[]> {
  return (await migratorFor(db).getMigrations()).filter((m) => !m.executedAt).map((m) => m.name);
}

export async function migrateToLatest(db: Db): Promise<string[]> {
  const migrator = migratorFor(db);
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(
      `migration ${failed?.migrationName ?? ''} failed: ${(error as Error | undefined)?.message ?? 'unknown error'}`,
    );
  }
  return (results ?? []).map((r) => r.migrationName);
}
