/** The consent component's public interface: consent events, the state they derive, their expiry. */
export { consentJobs } from './consent.jobs';
export { consentRouter } from './consent.router';
export { consentRoutes } from './consent.schema';
export {
  type ChangeSet,
  type ConsentChange,
  type ConsentEventView,
  ConsentService,
  type ConsentView,
  type ExpiringGrant,
  type HistoryEntry,
  type Provenance,
  type RecordedEvent,
  type StoredReceipt,
} from './consent.service';
export {
  RECEIPT_VERSION,
  type ReceiptPayload,
  receiptPayloadSchema,
} from './receipt';
export {
  isReceiptProofFile,
  type ReceiptProofFile,
  receiptProofFileSchema,
  verifyReceiptJws,
  verifyReceiptProofFile,
} from './verify-receipt';
