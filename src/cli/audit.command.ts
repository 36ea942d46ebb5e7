import { readFile } from 'node:fs/promises';
import type { JSONWebKeySet } from 'jose';
import { verifyDatabase, verifyExportFile } from '../audit';
import { loadKeys } from '../platform/auth/keys';
import { loadConfig } from '../platform/config';
import { createDb } from '../platform/db/database';
import { createLogger } from '../platform/logger';
import { parseOptions, UsageError } from './args';

const USAGE =
  'usage: optgate audit verify FILE --manifest MANIFEST --jwks JWKS | optgate audit verify --db [--jwks JWKS]';

/** Exit 0: intact. Exit 1: tampered (the report names the first bad sequence). Exit 2: usage. */
export async function auditCommand([sub, ...args]: string[]): Promise<number> {
  if (sub !== 'verify') throw new UsageError(USAGE);
  const { values, positionals } = parseOptions(
    args,
    { manifest: { type: 'string' }, jwks: { type: 'string' }, db: { type: 'boolean', default: false } },
    true,
  );
  const jwks = values.jwks ? await readJwks(values.jwks) : undefined;

  if (values.db) {
    if (positionals.length) throw new UsageError(USAGE);
    const config = loadConfig();
    const { db } = createDb(config.db, createLogger('warn'));
    try {
      const report = await verifyDatabase(db, jwks ?? (await loadKeys(config.auth, config.env)).publicJwks);
      process.stdout.write(report.render(`optgate audit verify --db (${new URL(config.db.url).pathname.slice(1)})`));
      return report.ok ? 0 : 1;
    } finally {
      await db.destroy();
    }
  }

  const [file] = positionals;
  if (!file || positionals.length > 1) throw new UsageError(USAGE);
  if (values.manifest && !jwks)
    throw new UsageError(
      '--manifest needs --jwks: the public keys you trust (the service publishes them at /.well-known/jwks.json)',
    );
  const report = await verifyExportFile({ file, manifestFile: values.manifest, jwks });
  process.stdout.write(report.render(`optgate audit verify ${file}`));
  return report.ok ? 0 : 1;
}

async function readJwks(file: string): Promise<JSONWebKeySet> {
  try {
    const jwks = JSON.parse(await readFile(file, 'utf8')) as JSONWebKeySet;
    if (!Array.isArray(jwks.keys)) throw new Error('no "keys" array');
    return jwks;
  } catch (err) {
    throw new UsageError(`--jwks ${file}: ${(err as Error).message}`);
  }
}
