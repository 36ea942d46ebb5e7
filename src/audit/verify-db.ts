import type { JSONWebKeySet } from 'jose';
import { verifyJws } from '../platform/auth/signing';
import type { Db } from '../platform/db/database';
import * as repo from './audit.repository';
import type { AuditCheckpointRow } from './audit.table';
import type { ChainedRecord } from './chain';
import { CHECKPOINT_TYP, type CheckpointPayload, checkpointPayloadSchema } from './formats';
import { leafHash, MerkleAccumulator } from './merkle';
import { readRecords } from './record-reader';
import { ChainVerifier } from './verify';
import { VerifyReport } from './verify-report';

const PAGE = 10_000;

/**
 * Verifies the whole chain in the database from the genesis: every hash and link, the filter
 * columns against the hashed content (a changed `outcome` column must not hide an allow), the
 * head row, and every signed checkpoint against the record it vouches for.
 */
export async function verifyDatabase(db: Db, jwks: JSONWebKeySet): Promise<VerifyReport> {
  const report = new VerifyReport();
  const chain = new ChainVerifier({ contiguous: true, fromGenesis: true });
  const hashes = new Map<number, string>();
  let checkpoints = 0;
  let checkpointAfter = 0;

  const checkCheckpoints = async (throughSeq: number) => {
    for (;;) {
      const page = await repo.checkpointsAfter(db, checkpointAfter, 1000);
      const due = page.filter((c) => Number(c.seq) <= throughSeq);
      for (const c of due) {
        const seq = Number(c.seq);
        checkpointAfter = seq;
        checkpoints++;
        let payload: CheckpointPayload | undefined;
        try {
          payload = (await verifyJws(c.jws, jwks, CHECKPOINT_TYP, checkpointPayloadSchema)).payload;
        } catch (err) {
          report.fail('checkpoint', `seq ${seq}: signature does not verify (${(err as Error).message})`);
          continue;
        }
        if (payload.seq !== seq || payload.hash !== c.hash || (payload.rootHash ?? null) !== c.root_hash)
          report.fail('checkpoint', `seq ${seq}: the row differs from what was signed`);
        else if (hashes.has(seq) && hashes.get(seq) !== payload.hash) {
          report.badRecord({ seq, problem: 'does not match the signed checkpoint (the chain was rewritten)' });
          report.fail('checkpoint', `seq ${seq}: the record's hash differs from the signed one`);
        } else if (!hashes.has(seq)) report.fail('checkpoint', `seq ${seq}: signed, but there is no such record`);
      }
      if (due.length < page.length || page.length < 1000) return;
    }
  };

  await repo.summarizeIndexes(db);
  // The Merkle tree, rebuilt leaf by leaf: each signed tree head's root must be the root of the records up to it.
  const tree = new MerkleAccumulator();
  const treeHeads = new TreeHeadQueue(db);
  let treeHeadsChecked = 0;
  let afterSeq = 0;
  for (;;) {
    const page = await readRecords(db, { afterSeq, limit: PAGE });
    hashes.clear();
    for (const r of page) {
      chain.push(r);
      if (r.hash && r.seq === tree.size + 1) tree.push(leafHash(r.hash));
      for (const th of await treeHeads.at(r.seq)) {
        treeHeadsChecked++;
        if (tree.size !== r.seq || tree.root().toString('hex') !== th.root_hash) {
          report.badRecord({ seq: r.seq, problem: "the records up to here do not make the signed tree head's root" });
          report.fail('tree head', `size ${r.seq}: the Merkle root of the records differs from the signed one`);
        }
      }
      if (r.altered) {
        const { from, to } = r.altered;
        report.badRecord({
          seq: from,
          problem: `altered: a record of seq ${from} … ${to} does not match the links its header keeps`,
        });
      }
      if (!chain.problem) checkColumns(r, report);
      hashes.set(r.seq, r.hash);
    }
    if (!page.length) break;
    afterSeq = page[page.length - 1]!.seq;
    await checkCheckpoints(afterSeq);
    if (page.length < PAGE) break;
  }
  await checkCheckpoints(Number.MAX_SAFE_INTEGER);
  if (chain.problem) report.badRecord(chain.problem);

  const head = await repo.readHead(db);
  report.note('records', `${chain.count} (seq ${chain.first?.seq ?? 0} … ${chain.last?.seq ?? 0})`);
  report.note(
    'chain',
    chain.problem
      ? `FAILED at seq ${chain.problem.seq}: ${chain.problem.problem}`
      : 'every hash recomputed from the genesis, every link and sequence number checked',
  );
  if (head.seq !== (chain.last?.seq ?? 0) || head.hash !== (chain.last?.hash ?? head.hash)) {
    report.fail('head', `the head row (seq ${head.seq}) is not the last record (seq ${chain.last?.seq ?? 0})`);
  } else report.note('head', `seq ${head.seq}, matches the last record`);
  if (!report.failures.some((f) => f.startsWith('checkpoint')))
    report.note('checkpoints', `${checkpoints} signed heads, every signature valid and matching its record`);
  if (!report.failures.some((f) => f.startsWith('tree head')))
    report.note('tree heads', `${treeHeadsChecked} Merkle roots recomputed from the records, each as signed`);
  return report;
}

/** The tree heads (checkpoints with a root), in order, fetched a page at a time as the records pass them. */
class TreeHeadQueue {
  private queue: AuditCheckpointRow[] = [];
  private after = 0;
  private done = false;

  constructor(private readonly db: Db) {}

  /** The tree heads of size `seq` (and any of a smaller size not reached: a gap, reported by the chain). */
  async at(seq: number): Promise<AuditCheckpointRow[]> {
    const out: AuditCheckpointRow[] = [];
    for (;;) {
      if (!this.queue.length && !this.done) {
        const page = await repo.checkpointsAfter(this.db, this.after, 1000);
        this.queue = page.filter((c) => c.root_hash !== null);
        if (page.length) this.after = Number(page[page.length - 1]!.seq);
        if (page.length < 1000) this.done = true;
        if (!this.queue.length && !this.done) continue;
      }
      const next = this.queue[0];
      if (!next || Number(next.seq) > seq) return out;
      this.queue.shift();
      if (Number(next.seq) === seq) out.push(next);
    }
  }
}

/** The columns that repeat parts of the content for filtering must say what was hashed. */
function checkColumns(r: ChainedRecord, report: VerifyReport): void {
  const c = JSON.parse(r.content) as Pick<ChainedRecord, 'seq' | 'type' | 'accountId' | 'outcome'> & {
    recordedAt: string;
  };
  const same =
    c.seq === r.seq &&
    c.type === r.type &&
    c.accountId === r.accountId &&
    c.outcome === r.outcome &&
    c.recordedAt === r.recordedAt.toISOString();
  if (!same) report.badRecord({ seq: r.seq, problem: 'altered: the filter columns differ from the hashed content' });
}
