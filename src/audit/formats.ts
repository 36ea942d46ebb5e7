import { parse as parseCsv } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { z } from 'zod';
import { accountId, outcome } from '../platform/vocabulary';
import {
  AUDIT_TYPES,
  accountCommitment,
  type ChainedRecord,
  canonicalJson,
  type Json,
  type VerifiableRecord,
} from './chain';

/**
 * The files optgate hands out and `optgate audit verify` reads back offline: signed checkpoints
 * (chain heads), export manifests, and the two export formats. The verifier needs these and the
 * chain, nothing of the services.
 */

export const auditType = z.enum(AUDIT_TYPES);

/** A purpose or exception id, as the catalog spells them. */
export const purposeId = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'not a purpose id');

/** Which records an export holds: every filter is optional; `from` inclusive, `to` exclusive. */
export const exportFiltersSchema = z.strictObject({
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  accountId: accountId.optional(),
  types: z.array(auditType).min(1).optional(),
  outcome: outcome.optional(),
  /**
   * Only the records of one purpose (or exception): decisions about it and consent events for it; other records
   * (staff actions) have none. Checked against the catalog where requests come in.
   */
  purpose: purposeId.optional(),
});
export type ExportFilters = z.infer<typeof exportFiltersSchema>;
export const exportFormat = z.enum(['ndjson', 'csv']);
export type ExportFormat = z.infer<typeof exportFormat>;

export const CHECKPOINT_TYP = 'optgate-checkpoint+jws';

/** A signed chain head: "record `seq` has hash `hash`", and so every record before it is fixed. */
/**
 * A signed head of the log: record `seq` has chain hash `hash`, and (a tree head, since the Merkle
 * tree) `rootHash` is the root of the Merkle tree of records 1 … `seq` (the tree's size).
 */
export const checkpointPayloadSchema = z.strictObject({
  iss: z.literal('optgate'),
  seq: z.int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  rootHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  signedAt: z.iso.datetime(),
});
export type CheckpointPayload = z.infer<typeof checkpointPayloadSchema>;

export const MANIFEST_TYP = 'optgate-export-manifest+jws';

/** A subscriber's consent receipt (signed by the portal; its `proof`, once there is one, checked by `verify-proof`). */
export const RECEIPT_TYP = 'optgate-receipt+jws';

export const manifestPayloadSchema = z.strictObject({
  iss: z.literal('optgate'),
  exportId: z.uuid(),
  createdAt: z.iso.datetime(),
  completedAt: z.iso.datetime(),
  format: exportFormat,
  filters: exportFiltersSchema,
  /** True when nothing but a time range was asked: the records are contiguous and every link can be checked. */
  contiguous: z.boolean(),
  rows: z.int().min(0),
  bytes: z.int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  first: z.strictObject({ seq: z.int().positive(), prevHash: z.string() }).nullable(),
  last: z.strictObject({ seq: z.int().positive(), hash: z.string() }).nullable(),
  /** The latest checkpoint (its JWS) at or below the export's last record. */
  checkpoint: z.string().nullable(),
});
export type ManifestPayload = z.infer<typeof manifestPayloadSchema>;

/**
 * An NDJSON line is the record's content with prevHash and hash appended (and, format 3, its
 * accountSalt): the content is not re-encoded.
 */
export function ndjsonLine(r: ChainedRecord): string {
  const salt = r.accountSalt ? `,"accountSalt":"${r.accountSalt}"` : '';
  return `${r.content.slice(0, -1)},"prevHash":"${r.prevHash}","hash":"${r.hash}"${salt}}\n`;
}

/**
 * The line of a record whose account is pseudonymised (an archive, for an account closed long
 * ago): the account id replaced by `pseudonym`, the salt dropped, the commitment kept, so the
 * record still verifies and its id cannot be recovered from it. Format 3 records only.
 */
export function pseudonymisedLine(r: ChainedRecord, pseudonym: string): string {
  if (!r.accountSalt || r.accountId === null) throw new Error('only a format 3 record can be pseudonymised');
  const content = canonicalJson({ ...(JSON.parse(r.content) as Record<string, Json>), accountId: pseudonym });
  const commitment = accountCommitment(r.accountSalt, r.accountId);
  return `${content.slice(0, -1)},"prevHash":"${r.prevHash}","hash":"${r.hash}","accountCommitment":"${commitment}"}\n`;
}

export function fromNdjsonLine(line: string): VerifiableRecord {
  const { prevHash, hash, accountSalt, accountCommitment, ...content } = JSON.parse(line) as Record<string, Json>;
  return {
    seq: Number(content.seq),
    content: canonicalJson(content),
    prevHash: String(prevHash),
    hash: String(hash),
    ...(accountSalt === undefined ? {} : { accountSalt: String(accountSalt) }),
    ...(accountCommitment === undefined ? {} : { accountCommitment: String(accountCommitment) }),
  };
}

export const CSV_COLUMNS = [
  'seq',
  'recorded_at',
  'type',
  'account_id',
  'outcome',
  'data',
  'prev_hash',
  'hash',
  'account_salt',
] as const;
export const CSV_HEADER = stringify([[...CSV_COLUMNS]]);
/** The header of CSV exports made before format 3 (no account_salt column): still verified. */
export const CSV_HEADER_V2 = stringify([CSV_COLUMNS.slice(0, -1)]);

/**
 * A cell that a spreadsheet would take for a formula (it begins with `=`, `+`, `-`, `@`, a tab or a
 * carriage return) is written with a leading `'`, which spreadsheets show as text; so is a cell that
 * begins with `'` itself, so that reading back is unambiguous: a cell that begins with `'` lost its
 * first character.
 */
const FORMULA_START = /^[=+\-@\t\r']/;

export function neutraliseCell(value: string): string {
  return FORMULA_START.test(value) ? `'${value}` : value;
}

export function readCell(cell: string): string {
  return cell.startsWith("'") ? cell.slice(1) : cell;
}

/** CSV rows: the content's fields as columns, `data` as canonical JSON; every text cell neutralised. */
export function csvRows(records: readonly ChainedRecord[]): string {
  return stringify(
    records.map((r) => {
      const c = JSON.parse(r.content) as { recordedAt: string; data: Json };
      return [
        r.seq,
        c.recordedAt,
        r.type,
        neutraliseCell(r.accountId ?? ''),
        r.outcome ?? '',
        neutraliseCell(canonicalJson(c.data)),
        r.prevHash,
        r.hash,
        r.accountSalt ?? '',
      ];
    }),
  );
}

/** One CSV line (a record never spans lines: its JSON holds no raw line breaks). */
export function fromCsvLine(line: string): VerifiableRecord {
  const [row] = parseCsv(line, { columns: [...CSV_COLUMNS], relax_column_count_less: true }) as Partial<
    Record<(typeof CSV_COLUMNS)[number], string>
  >[];
  if (!row) throw new Error('empty CSV line');
  const seq = Number(row.seq);
  const content = canonicalJson({
    seq,
    recordedAt: row.recorded_at ?? '',
    type: row.type ?? '',
    accountId: readCell(row.account_id ?? '') || null,
    outcome: row.outcome || null,
    data: JSON.parse(readCell(row.data ?? 'null')) as Json,
  });
  const salt = row.account_salt ? { accountSalt: row.account_salt } : {};
  return { seq, content, prevHash: row.prev_hash ?? '', hash: row.hash ?? '', ...salt };
}
