import type { Db } from '../platform/db/database';
import { AppError, validationError } from '../platform/errors';
import * as repo from './audit.repository';
import { ndjsonLine } from './formats';
import { consistencyProof, inclusionProof } from './merkle';
import { readRecords } from './record-reader';
import { AuditTree, refuseArchived } from './tree';

/**
 * Merkle proofs over the stored log, for the API and `optgate audit prove`. A proof is made
 * against a tree size at most the latest signed tree head's (the tree is built that far).
 */

/**
 * The inclusion proof of record `seq` in the tree of `treeSize` records (by default the latest
 * signed tree head's size), with the record itself (as an NDJSON export line) and the signed tree
 * head of that size when there is one: what `optgate audit verify-proof` checks offline.
 */
export async function proveInclusion(db: Db, seq: number, treeSize?: number) {
  const { size, signed } = await resolveSize(db, treeSize, 'treeSize');
  if (seq > size) throw validation('seq', `must be at most the tree size (${size})`);
  const [record] = await readRecords(db, { afterSeq: seq - 1, limit: 1 });
  if (!record || record.seq !== seq) {
    await refuseArchived(db, seq);
    throw new AppError('not-found', `No record ${seq}.`);
  }
  const tree = new AuditTree(db);
  const hashes = await tree.prove((subtree) => inclusionProof(seq - 1, size, subtree));
  return {
    seq,
    leafIndex: seq - 1,
    treeSize: size,
    recordHash: record.hash,
    hashes: hashes.map(hex),
    rootHash: signed?.root_hash ?? hex(await tree.root(size)),
    ...(signed ? { treeHead: signed.jws } : {}),
    record: JSON.parse(ndjsonLine(record)) as Record<string, unknown>,
  };
}

/** The consistency proof that the tree of `to` records (default: the latest signed) extends the tree of `from`. */
export async function proveConsistency(db: Db, from: number, to?: number) {
  const { size } = await resolveSize(db, to, 'to');
  if (from > size) throw validation('from', `must be at most \`to\` (${size})`);
  const hashes = await new AuditTree(db).prove((subtree) => consistencyProof(from, size, subtree));
  return { from, to: size, hashes: hashes.map(hex) };
}

async function resolveSize(db: Db, requested: number | undefined, field: string) {
  const latest = await repo.findTreeHead(db);
  if (!latest) throw new AppError('not-found', 'No tree head has been signed yet.');
  const max = Number(latest.seq);
  if (requested === undefined) return { size: max, signed: latest };
  if (requested > max) throw validation(field, `must be at most the latest signed tree head's size (${max})`);
  return { size: requested, signed: await repo.findTreeHead(db, requested) };
}

const hex = (b: Buffer) => b.toString('hex');

const validation = (path: string, message: string) => validationError([{ path, message }]);
