import type { JSONWebKeySet } from 'jose';
import { z } from 'zod';
import { verifyJws } from '../platform/auth/signing';
import { hashFormat } from './chain';
import {
  CHECKPOINT_TYP,
  type CheckpointPayload,
  checkpointPayloadSchema,
  fromNdjsonLine,
  RECEIPT_TYP,
} from './formats';
import { leafHash, verifyConsistency, verifyInclusion } from './merkle';
import { VerifyReport } from './verify-report';

/**
 * Offline checks of Merkle proofs (`optgate audit verify-proof`, `verify-consistency`): nothing
 * but the files and the public keys. Depends on the chain, the formats and the tree's hashing only.
 */

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

/** What `optgate audit prove` prints, and what a receipt carries: the record, its proof, the signed tree head. */
export const inclusionProofFileSchema = z.object({
  record: z.record(z.string(), z.unknown()).optional(),
  recordHash: hex64.optional(),
  leafIndex: z.int().min(0),
  treeSize: z.int().min(1),
  hashes: z.array(hex64),
  treeHead: z.string(),
});
export type InclusionProofFile = z.infer<typeof inclusionProofFileSchema>;

async function treeHeadOf(jws: string, jwks: JSONWebKeySet, report: VerifyReport, what: string) {
  try {
    const { payload } = await verifyJws(jws, jwks, CHECKPOINT_TYP, checkpointPayloadSchema);
    if (!payload.rootHash) {
      report.fail(what, 'signed, but it is a checkpoint without a Merkle root (signed before the tree)');
      return undefined;
    }
    report.note(what, `size ${payload.seq}, root ${payload.rootHash}, signed ${payload.signedAt}: signature valid`);
    return payload as CheckpointPayload & { rootHash: string };
  } catch (err) {
    report.fail(what, `does not verify (${(err as Error).message})`);
    return undefined;
  }
}

/** Is this record (or record hash) in the log whose signed tree head the file carries? */
export async function verifyInclusionFile(input: unknown, jwks: JSONWebKeySet): Promise<VerifyReport> {
  const report = new VerifyReport();
  const parsed = inclusionProofFileSchema.safeParse(input);
  if (!parsed.success) {
    report.fail('proof', `not an inclusion proof: ${parsed.error.issues[0]?.message ?? 'unreadable'}`);
    return report;
  }
  const p = parsed.data;
  let recordHash = p.recordHash;
  if (p.record) {
    const r = fromNdjsonLine(JSON.stringify(p.record));
    if (!hashFormat(r)) {
      report.badRecord({ seq: r.seq, problem: 'altered: the content does not match its hash' });
      return report;
    }
    if (r.seq !== p.leafIndex + 1)
      report.fail('proof', `the record is seq ${r.seq}, the proof is for leaf ${p.leafIndex}`);
    if (recordHash && recordHash !== r.hash) report.fail('proof', "recordHash is not the record's hash");
    recordHash = r.hash;
    report.note('record', `seq ${r.seq}: its content matches its hash`);
  } else report.note('record', 'not in the file: only the record hash is checked');
  if (!recordHash) {
    report.fail('proof', 'neither a record nor a record hash');
    return report;
  }
  const head = await treeHeadOf(p.treeHead, jwks, report, 'tree head');
  if (!head) return report;
  if (head.seq !== p.treeSize) report.fail('proof', `made for size ${p.treeSize}, the tree head is size ${head.seq}`);
  const ok = verifyInclusion(
    p.leafIndex,
    p.treeSize,
    leafHash(recordHash),
    p.hashes.map((h) => Buffer.from(h, 'hex')),
    Buffer.from(head.rootHash, 'hex'),
  );
  if (ok) report.note('inclusion', `leaf ${p.leafIndex} is in the tree of ${p.treeSize} (${p.hashes.length} hashes)`);
  else report.fail('inclusion', 'the proof does not lead from the record to the signed root');
  return report;
}

const receiptSchema = z.looseObject({
  sub: z.string(),
  eventId: z.string(),
  proof: inclusionProofFileSchema.extend({ record: z.record(z.string(), z.unknown()) }).optional(),
});

/**
 * A consent receipt of the first format (one event, signed on each download with its proof inside; before receipts
 * were stored, migration 0017): its signature, then the inclusion proof it carries, and that the proven record is this
 * receipt's event of this account. Receipts of today are checked by the consent component (verifyReceipt).
 */
export async function verifyReceiptFile(jws: string, jwks: JSONWebKeySet): Promise<VerifyReport> {
  let receipt: z.infer<typeof receiptSchema>;
  try {
    receipt = (await verifyJws(jws.trim(), jwks, RECEIPT_TYP, receiptSchema)).payload;
  } catch (err) {
    const report = new VerifyReport();
    report.fail('receipt', `does not verify (${(err as Error).message})`);
    return report;
  }
  if (!receipt.proof) {
    const report = new VerifyReport();
    report.note('receipt', `event ${receipt.eventId}: signature valid`);
    report.notChecked('proof', "the receipt carries no proof: download the receipt's proof file from the portal");
    return report;
  }
  const report = await verifyInclusionFile(receipt.proof, jwks);
  report.lines.unshift(`  ${'receipt'.padEnd(12)} event ${receipt.eventId} of account ${receipt.sub}: signature valid`);
  const record = receipt.proof.record as { accountId?: unknown; type?: unknown; data?: { eventId?: unknown } };
  if (record.type !== 'consent_event' || record.data?.eventId !== receipt.eventId || record.accountId !== receipt.sub)
    report.fail('proof', "the proven record is not this receipt's event");
  return report;
}

/** Does the newer signed tree head extend the older one, by this consistency proof? */
export async function verifyConsistencyFiles(
  olderJws: string,
  newerJws: string,
  proof: unknown,
  jwks: JSONWebKeySet,
): Promise<VerifyReport> {
  const report = new VerifyReport();
  const older = await treeHeadOf(olderJws.trim(), jwks, report, 'older tree head');
  const newer = await treeHeadOf(newerJws.trim(), jwks, report, 'newer tree head');
  const parsed = z.object({ hashes: z.array(hex64) }).safeParse(proof);
  if (!parsed.success) report.fail('proof', 'not a consistency proof: {"hashes": [...]} expected');
  if (!older || !newer || !parsed.success) return report;
  const ok = verifyConsistency(
    older.seq,
    newer.seq,
    Buffer.from(older.rootHash, 'hex'),
    Buffer.from(newer.rootHash, 'hex'),
    parsed.data.hashes.map((h) => Buffer.from(h, 'hex')),
  );
  if (ok) report.note('consistency', `the tree of ${newer.seq} extends the tree of ${older.seq}`);
  else
    report.fail(
      'consistency',
      `the proof does not show that the tree of ${newer.seq} extends the tree of ${older.seq}`,
    );
  return report;
}
