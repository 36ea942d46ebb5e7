import type { ColumnType, Selectable } from 'kysely';
import type { DecisionEndpoint, Outcome } from '../platform/vocabulary';
import type { AuditType } from './chain';
import type { ExportFilters, ExportFormat } from './formats';

type BigintColumn = ColumnType<string, string | number, string | number>;

export interface AuditRecordTable {
  seq: BigintColumn;
  recorded_at: Date;
  type: AuditType;
  account_id: string | null;
  outcome: Outcome | null;
  content: string;
  prev_hash: string;
  hash: string;
  /** Format 3: the salt of the account commitment (null before format 3, and for records of no account). */
  account_salt: string | null;
}

export interface AuditHeadTable {
  id: number;
  seq: BigintColumn;
  hash: string;
  recorded_at: Date;
}

export interface AuditCheckpointTable {
  seq: BigintColumn;
  hash: string;
  signed_at: Date;
  kid: string;
  jws: string;
  /** A tree head's Merkle root of records 1 … seq (null on checkpoints signed before the tree). */
  root_hash: string | null;
}

/** Complete aligned subtrees of the Merkle tree, 64 leaves and more (src/audit/tree.ts). */
export interface AuditTreeNodeTable {
  level: number;
  idx: BigintColumn;
  hash: Buffer;
}

export type ExportStatus = 'queued' | 'running' | 'completed' | 'failed' | 'expired';

export interface AuditExportTable {
  id: string;
  requested_by: string;
  filters: ColumnType<ExportFilters, string, string>;
  format: ExportFormat;
  status: ExportStatus;
  progress: ColumnType<number, number | undefined, number>;
  rows: ColumnType<string, string | number | undefined, string | number>;
  bytes: ColumnType<string, string | number | undefined, string | number>;
  sha256: string | null;
  first_seq: BigintColumn | null;
  last_seq: BigintColumn | null;
  manifest: string | null;
  error: string | null;
  created_at: Date;
  completed_at: Date | null;
  /** When a completed export's file is deleted. */
  expires_at: Date | null;
}

export interface AuditExportChunkTable {
  export_id: string;
  n: number;
  data: Buffer;
}

export type AuditRecordRow = Selectable<AuditRecordTable>;
export type AuditCheckpointRow = Selectable<AuditCheckpointTable>;
export type AuditExportRow = Selectable<AuditExportTable>;
export type AuditArchiveRow = Selectable<AuditArchiveTable>;

/** A decision request's header (format 2); a single decision holds its verdict inline. */
export interface AuditDecisionTable {
  seq: BigintColumn;
  count: number;
  recorded_at: Date;
  decision_id: string;
  endpoint: DecisionEndpoint;
  client_id: string;
  /** Null: the same as decision_id (migration 0021). */
  request_id: string | null;
  purpose: string;
  /** The categories asked about, comma-separated, in the request's order. */
  categories: string;
  recipient: string | null;
  reference: string | null;
  evaluated_at: Date;
  account_id: string | null;
  verdict: Buffer | null;
  /** 32-byte links: before every TILE-th record, then after the last. */
  links: Buffer;
  /** Format 3: the seed of its records' account salts (decisions.ts saltAt); null before format 3. */
  account_seed: Buffer | null;
}

/** One account judged by a batch or filter call (format 2). */
export interface AuditVerdictTable {
  seq: BigintColumn;
  account_id: string;
  verdict: Buffer;
  /** The day (UTC) of its header: the partition key. */
  recorded_on: ColumnType<Date, string, string>;
}

/** Written by the owner when it migrates (the configured retention); read by the partition functions. */
export interface AuditSettingsTable {
  id: number;
  retention_months: number;
  /** The end of the partition that holds the records written before the log was partitioned. */
  legacy_until: Date | null;
}

/** A month of the log archived to a file and dropped (src/audit/archive.ts). */
export interface AuditArchiveTable {
  /** `YYYY-MM`, or `legacy`. */
  period: string;
  /** The records archived (null, with the hashes, tree head and frontier, for an empty month). */
  first_seq: BigintColumn | null;
  last_seq: BigintColumn | null;
  /** The chain hash before the first record, and of the last. */
  prev_hash: string | null;
  last_hash: string | null;
  rows: BigintColumn;
  /** Records whose account id the file holds pseudonymised. */
  pseudonymised: ColumnType<string, string | number | undefined, string | number>;
  /** The file's name in the archive directory. */
  file: string;
  bytes: BigintColumn;
  sha256: string;
  /** The file's signed manifest (a JWS). */
  manifest: string;
  /** The signed tree head that covers the archive's records. */
  tree_head: string | null;
  /** The Merkle tree's frontier after `last_seq` (JSON: the roots of its perfect subtrees, left to right, hex). */
  frontier: string | null;
  archived_at: Date;
}

/** The hashes of archived records in the 64-leaf tile that the online log continues. */
export interface AuditArchiveEdgeTable {
  seq: BigintColumn;
  hash: string;
}

export type AuditDecisionRow = Selectable<AuditDecisionTable>;
export type AuditVerdictRow = Selectable<AuditVerdictTable>;

/** One verification of the log in the database (migration 0019): the scheduled job's, the CLI's or the console's. */
export interface AuditVerificationTable {
  id: ColumnType<string, never, never>;
  started_at: Date;
  finished_at: Date;
  /** The first and last sequence numbers checked (from_seq > to_seq: nothing new to check). */
  from_seq: BigintColumn;
  to_seq: BigintColumn;
  /** The hash of record `to_seq`, as verified (null unless intact). */
  to_hash: string | null;
  /** The Merkle tree's frontier after `to_seq` (JSON, hex), computed from the verified records (null unless intact). */
  frontier: string | null;
  records_checked: BigintColumn;
  result: 'intact' | 'broken' | 'error';
  /** The first problem: a short text naming a sequence number, no subscriber data. */
  problem: string | null;
  problem_seq: BigintColumn | null;
  ran_by: 'job' | 'cli' | 'console';
}

export type AuditVerificationRow = Selectable<AuditVerificationTable>;
/** Hourly counts of the log for the console's charts (migration 0020, src/audit/rollups.ts). */
export interface AuditRollupHourlyTable {
  kind: 'decision' | 'denial' | 'consent';
  hour: Date;
  client_id: string;
  purpose: string;
  outcome: '' | 'allow' | 'deny';
  reason: string;
  event: string;
  count: BigintColumn;
}

/** How far the log has been counted into audit_rollup_hourly (one row). */
export interface AuditRollupStateTable {
  id: number;
  last_seq: BigintColumn;
  last_recorded_at: Date | null;
}
