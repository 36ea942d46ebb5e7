import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { JSONWebKeySet } from 'jose';
import {
  AuditArchiver,
  proveInclusion,
  recordVerification,
  signTreeHeads,
  type VerifyReport,
  verifyConsistencyFiles,
  verifyExportFile,
  verifyInclusionFile,
  verifyLog,
} from '../audit';
import { isReceiptProofFile, verifyReceiptJws, verifyReceiptProofFile } from '../consent';
import { loadKeys } from '../platform/auth/keys';
import { loadConfig } from '../platform/config';
import { createDb } from '../platform/db/database';
import { prepareDatabase } from '../platform/db/roles';
import { AppError } from '../platform/errors';
import { createLogger } from '../platform/logger';
import { parseOptions, UsageError } from './args';

const USAGE = [
  'usage: optgate audit verify FILE --manifest MANIFEST --jwks JWKS',
  '       optgate audit verify --db [--archives DIR] [--jwks JWKS]',
  '       optgate audit archive',
  '       optgate audit prove --seq N [--tree-size M]',
  '       optgate audit verify-proof FILE --jwks JWKS',
  '       optgate audit verify-consistency OLD_HEAD NEW_HEAD --proof FILE --jwks JWKS',
].join('\n');

/**
 * Exit 0: intact. Exit 1: tampered (the report names the first bad sequence). Exit 2: usage. Exit 3 (verify-proof):
 * what was checked is intact, but a check needs another file (a receipt without its proof file: INCOMPLETE).
 */
export async function auditCommand([sub, ...args]: string[]): Promise<number> {
  if (sub === 'prove') return prove(args);
  if (sub === 'verify-proof') return verifyProof(args);
  if (sub === 'verify-consistency') return verifyConsistencyCommand(args);
  if (sub === 'archive') return archive(args);
  if (sub !== 'verify') throw new UsageError(USAGE);
  const { values, positionals } = parseOptions(
    args,
    {
      manifest: { type: 'string' },
      jwks: { type: 'string' },
      db: { type: 'boolean', default: false },
      archives: { type: 'string' },
    },
    true,
  );
  if (values.archives && !values.db) throw new UsageError('--archives goes with --db');
  const jwks = values.jwks ? await readJwks(values.jwks) : undefined;

  if (values.db) {
    if (positionals.length) throw new UsageError(USAGE);
    const config = loadConfig();
    const { db } = createDb(config.db, createLogger('warn'));
    try {
      const startedAt = new Date();
      const v = await verifyLog(db, jwks ?? (await loadKeys(config.auth, config.env)).publicJwks, {
        ...(values.archives ? { archiveDir: path.resolve(values.archives) } : {}),
      });
      const { report } = v;
      process.stdout.write(report.render(`optgate audit verify --db (${new URL(config.db.url).pathname.slice(1)})`));
      // Recorded for the console's integrity page (and, intact, as a point the scheduled job may continue from).
      await recordVerification(db, v, { startedAt, finishedAt: new Date(), ranBy: 'cli' }).catch((err: Error) =>
        process.stderr.write(`note: the result could not be recorded in the database (${err.message})\n`),
      );
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

/**
 * Archives and drops the months of the log past the retention now (the retention job does it every
 * hour in a worker), and creates the coming months' partitions. Prints what it archived.
 */
async function archive(args: string[]): Promise<number> {
  parseOptions(args, {});
  const config = loadConfig();
  const logger = createLogger('warn');
  const { runtimeUrl } = await prepareDatabase({ ...config.db, env: config.env }, logger);
  const { db } = createDb({ ...config.db, url: runtimeUrl }, logger);
  try {
    const keys = await loadKeys(config.auth, config.env);
    const clock = () => new Date();
    const archiver = new AuditArchiver({
      db,
      keys,
      clock,
      ...config.archive,
      signTreeHead: () => signTreeHeads({ db, keys, clock }),
    });
    const archived = await archiver.run();
    const lines = archived.map(
      (a) =>
        `  ${a.period.padEnd(8)} ${String(a.rows).padStart(12)} records  ${path.join(config.archive.dir, a.file)}` +
        (a.pseudonymised ? `  (${a.pseudonymised} pseudonymised)` : ''),
    );
    process.stdout.write(
      archived.length
        ? `archived and dropped (retention ${config.db.auditRetentionMonths} months):\n${lines.join('\n')}\n`
        : `nothing to archive (retention ${config.db.auditRetentionMonths} months)\n`,
    );
    return 0;
  } finally {
    await db.destroy();
  }
}

/** Prints the inclusion proof of one record, with the record and the signed tree head, as JSON. */
async function prove(args: string[]): Promise<number> {
  const { values } = parseOptions(args, { seq: { type: 'string' }, 'tree-size': { type: 'string' } });
  const seq = positiveInt('--seq', values.seq);
  const treeSize = values['tree-size'] === undefined ? undefined : positiveInt('--tree-size', values['tree-size']);
  const config = loadConfig();
  const { db } = createDb(config.db, createLogger('warn'));
  try {
    process.stdout.write(`${JSON.stringify(await proveInclusion(db, seq, treeSize), null, 2)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof AppError) throw new UsageError(`${err.detail}${fieldsOf(err)}`);
    throw err;
  } finally {
    await db.destroy();
  }
}

async function verifyProof(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { jwks: { type: 'string' } }, true);
  const [file] = positionals;
  if (!file || positionals.length > 1 || !values.jwks) throw new UsageError(USAGE);
  // A proof file (JSON): a record's (`prove`), or a receipt's (the portal's proof.json); or a receipt as the portal
  // downloads it (a compact JWS: its signature only).
  const text = (await readText(file)).trim();
  const jwks = await readJwks(values.jwks);
  let report: VerifyReport;
  if (text.startsWith('{')) {
    const json = await readJson(file);
    report = isReceiptProofFile(json)
      ? await verifyReceiptProofFile(json, jwks)
      : await verifyInclusionFile(json, jwks);
  } else report = await verifyReceiptJws(text, jwks);
  process.stdout.write(report.render(`optgate audit verify-proof ${file}`));
  return !report.ok ? 1 : report.complete ? 0 : 3;
}

async function verifyConsistencyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { proof: { type: 'string' }, jwks: { type: 'string' } }, true);
  const [older, newer] = positionals;
  if (!older || !newer || positionals.length > 2 || !values.proof || !values.jwks) throw new UsageError(USAGE);
  const report = await verifyConsistencyFiles(
    await readText(older),
    await readText(newer),
    await readJson(values.proof),
    await readJwks(values.jwks),
  );
  process.stdout.write(report.render(`optgate audit verify-consistency ${older} ${newer}`));
  return report.ok ? 0 : 1;
}

function positiveInt(name: string, text: string | undefined): number {
  const n = Number(text);
  if (text === undefined || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name}: a positive integer`);
  return n;
}

const fieldsOf = (err: AppError) =>
  err.errors?.length ? ` (${err.errors.map((e) => `${e.path} ${e.message}`).join('; ')})` : '';

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
}

async function readJson(file: string): Promise<unknown> {
  const text = await readText(file);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: not JSON (${(err as Error).message})`);
  }
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
