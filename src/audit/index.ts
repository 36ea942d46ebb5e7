/**
 * The audit component's public interface: other components import audit only from here.
 *
 * - the record vocabulary: one discriminated union of every record kind, typed builders, one parser;
 * - the writer: group commit for decisions, `appendWithin` for records that commit with a change;
 * - the read side: events, the consent change feed, account activity, checkpoints, exports;
 * - the file formats and verifiers that `optgate audit verify` runs offline.
 */
export { type ArchivedMonth, AuditArchiver } from './archive';
export { auditJobs } from './audit.jobs';
export { auditRouter, checkPurposeFilter } from './audit.router';
export { auditRoutes } from './audit.schema';
export {
  type AuditEventView,
  AuditService,
  type ConsentEventLookup,
  signTreeHeads,
  TIMELINE_KINDS,
  type TimelineKind,
  type TimelineQuery,
  type WebhookFeedItem,
} from './audit.service';
export { AuditWriter, appendWithin } from './audit.writer';
export {
  accountCommitment,
  bodyOf,
  type ChainedRecord,
  canonicalJson,
  chainHashV1,
  contentHashOf,
  GENESIS_HASH,
  hashFormat,
  type Json,
  linkHash,
  prepare,
  rawJson,
  seal,
  type Unchained,
  type VerifiableRecord,
} from './chain';
export type { AccountVerdict, DecisionHeader } from './decisions';
export { ExportService } from './export.service';
export {
  CHECKPOINT_TYP,
  type CheckpointPayload,
  CSV_COLUMNS,
  checkpointPayloadSchema,
  csvRows,
  type ExportFilters,
  exportFiltersSchema,
  fromCsvLine,
  fromNdjsonLine,
  MANIFEST_TYP,
  type ManifestPayload,
  manifestPayloadSchema,
  ndjsonLine,
  pseudonymisedLine,
  purposeId,
  RECEIPT_TYP,
} from './formats';
export {
  AuditIntegrity,
  headLateAfterMs,
  type IntegrityState,
  recordVerification,
  VERIFY_GRACE_MS,
  type Verification,
  type VerificationRunner,
} from './integrity';
export {
  consistencyProof,
  type Hash,
  inclusionProof,
  leafHash,
  MerkleAccumulator,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from './merkle';
export { proveConsistency, proveInclusion } from './proofs';
export { readRecords } from './record-reader';
export {
  type AuditDraft,
  AuditFormatError,
  type AuditRecord,
  type AuditType,
  consentEventRecord,
  parseRecord,
  type StaffActionData,
  staffActionRecord,
} from './records';
export { ROLLUP_STEP, type RollupCounts, type RollupRun, type RollupState } from './rollups';
export { AuditTree } from './tree';
export { ChainVerifier } from './verify';
export { type LogVerification, type VerifiedPoint, verifyDatabase, verifyLog } from './verify-db';
export { verifyExportFile } from './verify-file';
export {
  type InclusionProofFile,
  inclusionProofFileSchema,
  verifyConsistencyFiles,
  verifyInclusionFile,
  verifyReceiptFile,
} from './verify-proof';
export { VerifyReport } from './verify-report';
