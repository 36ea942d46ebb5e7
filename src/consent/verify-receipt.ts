import type { JSONWebKeySet } from 'jose';
import { z } from 'zod';
import { inclusionProofFileSchema, RECEIPT_TYP, VerifyReport, verifyInclusionFile, verifyReceiptFile } from '../audit';
import { verifyJws } from '../platform/auth/signing';
import { payloadBytesOf, type ReceiptPayload, receiptPayloadSchema } from './receipt';

/**
 * Offline checks of consent receipts (`optgate audit verify-proof`): nothing but the files and the public keys.
 *
 * A receipt is signed when its act is recorded, before any tree head covers the act's audit records, so it cannot
 * carry their proofs: those come in the receipt's proof file (`/receipts/:id/proof.json`), made once a signed tree
 * head covers them.
 */

/** A receipt's proof file: the signed receipt, and the inclusion proof of each of its events' audit records. */
export const receiptProofFileSchema = z.object({
  receipt: z.string(),
  proofs: z.array(inclusionProofFileSchema.extend({ eventId: z.uuid(), record: z.record(z.string(), z.unknown()) })),
});
export type ReceiptProofFile = z.infer<typeof receiptProofFileSchema>;

/** Whether a JSON file is a receipt's proof file (rather than the proof of one record, `optgate audit prove`). */
export const isReceiptProofFile = (json: unknown): boolean =>
  typeof json === 'object' && json !== null && 'receipt' in json;

/**
 * A receipt as downloaded (`receipt.jws`): its signature. Whether its changes are in the audit log is not checked (the
 * report says INCOMPLETE): that takes the proof file. A receipt of the first format (one event, its proof inside)
 * is checked as it was.
 */
export async function verifyReceiptJws(jws: string, jwks: JSONWebKeySet): Promise<VerifyReport> {
  if (isFirstFormat(jws)) return verifyReceiptFile(jws, jwks);
  const report = new VerifyReport();
  const receipt = await signedReceipt(jws, jwks, report);
  if (receipt) {
    report.notChecked(
      'proof',
      'that its changes are in the audit log: verify its proof file ' +
        `(optgate-receipt-${receipt.consentReceiptID}.proof.json) instead`,
    );
  }
  return report;
}

/**
 * A receipt's proof file: the receipt's signature; each proof against its signed tree head; one proof for each change
 * of the receipt, and none for anything else; each proven record the consent event of this change (same account,
 * event, change, purpose and category) recorded by this receipt's act.
 */
export async function verifyReceiptProofFile(input: unknown, jwks: JSONWebKeySet): Promise<VerifyReport> {
  const report = new VerifyReport();
  const parsed = receiptProofFileSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    report.fail('proof', `not a receipt's proof file: ${issue ? `${issue.path.join('.')}: ${issue.message}` : ''}`);
    return report;
  }
  const receipt = await signedReceipt(parsed.data.receipt, jwks, report);
  if (!receipt) return report;
  const proofs = new Map<string, ReceiptProofFile['proofs'][number]>();
  for (const p of parsed.data.proofs) {
    if (proofs.has(p.eventId)) report.fail('proof', `event ${p.eventId} is proven twice`);
    proofs.set(p.eventId, p);
  }
  const changes = new Set(receipt.changes.map((c) => c.eventId));
  for (const id of proofs.keys()) if (!changes.has(id)) report.fail('proof', `event ${id} is not on this receipt`);
  for (const change of receipt.changes) {
    const proof = proofs.get(change.eventId);
    if (!proof) {
      report.fail('proof', `no proof for event ${change.eventId}`);
      continue;
    }
    const { eventId: _, ...file } = proof;
    report.include(await verifyInclusionFile(file, jwks));
    if (!recordsChange(proof.record, receipt, change)) {
      report.fail('proof', `the record proven for event ${change.eventId} is not this receipt's change`);
    } else {
      report.note('change', `${change.purpose}: ${change.category} ${change.change} is record ${proof.leafIndex + 1}`);
    }
  }
  return report;
}

async function signedReceipt(jws: string, jwks: JSONWebKeySet, report: VerifyReport) {
  try {
    const { payload } = await verifyJws(jws.trim(), jwks, RECEIPT_TYP, receiptPayloadSchema);
    report.note(
      'receipt',
      `${payload.consentReceiptID} of account ${payload.piiPrincipalId}, ${payload.changes.length} ` +
        `change${payload.changes.length === 1 ? '' : 's'}: signature valid`,
    );
    return payload;
  } catch (err) {
    report.fail('receipt', `does not verify (${(err as Error).message})`);
    return undefined;
  }
}

/** The record (an NDJSON export line) is the consent event of this change, recorded by this receipt's act. */
function recordsChange(record: Record<string, unknown>, receipt: ReceiptPayload, change: ReceiptPayload['changes'][0]) {
  const data = (record.data ?? {}) as Record<string, unknown>;
  // Events recorded before receipts were kept, and the system's, have a receipt of their own, with their id.
  const ofThisAct =
    data.receiptId === receipt.consentReceiptID ||
    (data.receiptId === undefined && receipt.consentReceiptID === change.eventId);
  return (
    record.type === 'consent_event' &&
    record.accountId === receipt.piiPrincipalId &&
    data.eventId === change.eventId &&
    data.kind === change.change &&
    data.purpose === change.purpose &&
    data.category === change.category &&
    ofThisAct
  );
}

/** A receipt signed before receipts were stored: one event, with `eventId` and the proof inside. */
function isFirstFormat(jws: string): boolean {
  try {
    const payload = JSON.parse(payloadBytesOf(jws.trim())) as unknown;
    return typeof payload === 'object' && payload !== null && 'eventId' in payload && !('version' in payload);
  } catch {
    return false;
  }
}
