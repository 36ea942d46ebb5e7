import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { JSONWebKeySet } from 'jose';
import { verifyJws } from '../platform/auth/signing';
import type { VerifiableRecord } from './chain';
import {
  CHECKPOINT_TYP,
  type CheckpointPayload,
  CSV_HEADER,
  CSV_HEADER_V2,
  checkpointPayloadSchema,
  fromCsvLine,
  fromNdjsonLine,
  MANIFEST_TYP,
  type ManifestPayload,
  manifestPayloadSchema,
} from './formats';
import { ChainVerifier } from './verify';
import { VerifyReport } from './verify-report';

export interface FileVerifyOptions {
  readonly file: string;
  readonly manifestFile?: string;
  /** The manifest itself (a JWS), in place of `manifestFile`. */
  readonly manifest?: string;
  /** The keys the verifier trusts: the service's published JWKS. */
  readonly jwks?: JSONWebKeySet;
  /** Each record as it is read (`audit verify --db` continues its chain and tree through archived files). */
  readonly onRecord?: (r: VerifiableRecord) => Promise<void> | void;
}

/**
 * Verifies an exported file offline: every record's hash, the links between records (when the
 * export is contiguous), the signed manifest (file hash, row count, first and last record) and
 * the signed checkpoint it carries. Streams the file: memory does not grow with its size.
 */
export async function verifyExportFile(o: FileVerifyOptions): Promise<VerifyReport> {
  const report = new VerifyReport();
  let manifest: ManifestPayload | undefined;
  let checkpoint: CheckpointPayload | undefined;
  if (o.manifestFile || o.manifest) {
    const jws = o.manifest ?? (await readFile(o.manifestFile!, 'utf8')).trim();
    try {
      const verified = await verifyJws(jws, o.jwks!, MANIFEST_TYP, manifestPayloadSchema);
      manifest = verified.payload;
      report.note(
        'manifest',
        `signature valid (key ${verified.kid}), export ${manifest.exportId}, completed ${manifest.completedAt}`,
      );
    } catch (err) {
      report.fail('manifest', `signature does not verify (${(err as Error).message})`);
    }
    if (manifest?.checkpoint) {
      try {
        checkpoint = (await verifyJws(manifest.checkpoint, o.jwks!, CHECKPOINT_TYP, checkpointPayloadSchema)).payload;
      } catch (err) {
        report.fail('checkpoint', `signature does not verify (${(err as Error).message})`);
      }
    }
  }

  const format = manifest?.format ?? (o.file.endsWith('.csv') ? 'csv' : 'ndjson');
  const contiguous = manifest?.contiguous ?? true;
  const chain = new ChainVerifier({ contiguous });
  const hashAtCheckpoint = { value: undefined as string | undefined };
  const sha = createHash('sha256');
  let bytes = 0;
  const input = createReadStream(o.file);
  input.on('data', (b) => {
    sha.update(b);
    bytes += b.length;
  });

  const take = (make: () => VerifiableRecord): VerifiableRecord | undefined => {
    let r: VerifiableRecord;
    try {
      r = make();
    } catch {
      report.badRecord({ seq: (chain.last?.seq ?? 0) + 1, problem: 'unreadable record (not valid for this format)' });
      return;
    }
    chain.push(r);
    if (checkpoint && r.seq === checkpoint.seq) hashAtCheckpoint.value = r.hash;
    return r;
  };
  // One record per line in both formats (the content is JSON, whose strings hold no raw line breaks), so a
  // line that cannot be read is reported at its place, as an unreadable record, and the rest is still checked.
  let header = format === 'csv';
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (!line) continue;
    if (header) {
      header = false;
      if (line !== CSV_HEADER.trimEnd() && line !== CSV_HEADER_V2.trimEnd())
        report.fail('file', `the CSV header is not ${CSV_HEADER.trimEnd()}`);
      continue;
    }
    const r = take(() => (format === 'csv' ? fromCsvLine(line) : fromNdjsonLine(line)));
    if (r && o.onRecord) await o.onRecord(r);
  }
  const sha256 = sha.digest('hex');

  if (chain.problem) report.badRecord(chain.problem);
  const range = chain.first ? `seq ${chain.first.seq} … ${chain.last!.seq}` : 'none';
  report.note('records', `${chain.count} ${format} records (${range})${contiguous ? '' : ', filtered'}`);
  report.note(
    'chain',
    chain.problem
      ? `FAILED at seq ${chain.problem.seq}: ${chain.problem.problem}`
      : contiguous
        ? 'every hash recomputed, every link and sequence number checked'
        : 'every hash recomputed (a filtered export holds no links between its records)',
  );

  if (manifest) {
    const mismatches: string[] = [];
    if (manifest.sha256 !== sha256) mismatches.push(`file sha256 is ${sha256}, the manifest says ${manifest.sha256}`);
    if (manifest.bytes !== bytes) mismatches.push(`file has ${bytes} bytes, the manifest says ${manifest.bytes}`);
    if (manifest.rows !== chain.count)
      mismatches.push(`file has ${chain.count} records, the manifest says ${manifest.rows}`);
    if (
      (manifest.first?.seq ?? null) !== (chain.first?.seq ?? null) ||
      (manifest.first?.prevHash ?? null) !== (chain.first?.prevHash ?? null)
    ) {
      mismatches.push('the first record is not the one the manifest names');
    }
    if (
      (manifest.last?.seq ?? null) !== (chain.last?.seq ?? null) ||
      (manifest.last?.hash ?? null) !== (chain.last?.hash ?? null)
    ) {
      mismatches.push('the last record is not the one the manifest names');
    }
    if (mismatches.length) for (const m of mismatches) report.fail('file', m);
    else
      report.note('file', `sha256 ${sha256}, ${bytes} bytes, ${chain.count} records, first and last records as signed`);
  } else if (!o.manifestFile && !o.manifest) {
    report.note('manifest', 'not given: the file is checked against itself only (pass --manifest and --jwks)');
  }

  if (checkpoint) {
    if (hashAtCheckpoint.value === undefined) {
      report.note(
        'checkpoint',
        `seq ${checkpoint.seq} signed ${checkpoint.signedAt}: signature valid; that record is not in this file`,
      );
    } else if (hashAtCheckpoint.value !== checkpoint.hash) {
      report.badRecord({
        seq: checkpoint.seq,
        problem: 'does not match the signed checkpoint (the chain was rewritten)',
      });
      report.fail(
        'checkpoint',
        `seq ${checkpoint.seq} signed ${checkpoint.signedAt}: the record's hash differs from the signed one`,
      );
    } else {
      report.note(
        'checkpoint',
        `seq ${checkpoint.seq} signed ${checkpoint.signedAt}: signature valid, matches record ${checkpoint.seq}`,
      );
    }
  } else if (manifest && !manifest.checkpoint) {
    report.note('checkpoint', 'none yet when the export was made');
  }
  return report;
}
