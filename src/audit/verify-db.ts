import path from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { verifyJws } from '../platform/auth/signing';
import type { Db } from '../platform/db/database';
import * as repo from './audit.repository';
import type { AuditArchiveRow, AuditCheckpointRow } from './audit.table';
import type { ChainedRecord, VerifiableRecord } from './chain';
import {
  CHECKPOINT_TYP,
  type CheckpointPayload,
  checkpointPayloadSchema,
  MANIFEST_TYP,
  manifestPayloadSchema,
} from './formats';
import { leafHash, MerkleAccumulator } from './merkle';
import { type ReadRecord, readRecords } from './record-reader';
import { ChainVerifier } from './verify';
import { verifyExportFile } from './verify-file';
import { VerifyReport } from './verify-report';

const PAGE = 10_000;

/**
 * Verifies the whole chain in the database from the genesis: every hash and link, the filter
 * columns against the hashed content (a changed `outcome` column must not hide an allow), the
 * head row, every signed checkpoint against the record it vouches for, and every tree head's root.
 *
 * Months archived and dropped (archive.ts) are read from their files when `archiveDir` is given:
 * each file against its signed manifest, and its records as part of the one chain and tree, so the
 * archives and the online log are verified as one log. Without it, the online log is verified from
 * the last archived record on: its link, and the tree continued from the frontier kept at archival.
 */
export async function verifyDatabase(
  db: Db,
  jwks: JSONWebKeySet,
  o: { readonly archiveDir?: string } = {},
): Promise<VerifyReport> {
  return (await verifyLog(db, jwks, o)).report;
}

/** Where a verification of the log stopped, intact: the next one may start there instead of at the genesis. */
export interface VerifiedPoint {
  readonly seq: number;
  readonly hash: string;
  /** The Merkle tree's frontier after `seq` (hex), made from the verified records themselves. */
  readonly frontier: readonly string[];
}

export interface LogVerification {
  readonly report: VerifyReport;
  /** The first record checked (the start's seq + 1 when nothing new was there). */
  readonly fromSeq: number;
  /** Records checked. */
  readonly checked: number;
  /** The last record checked and the tree there; undefined when nothing was checked or the chain broke. */
  readonly end: VerifiedPoint | undefined;
  /** false when `maxRecords` stopped it before the head: the next run continues from `end`. */
  readonly reachedHead: boolean;
}

/**
 * The verification behind `verifyDatabase`, also run in parts: `from` starts after a point an earlier intact run
 * verified (the first record's prevHash must be its hash; the tree continues from its frontier), and `maxRecords` stops
 * it after so many records. The head row is read first: records appended meanwhile are left to the next run, so a log
 * being written to verifies as intact (records beyond the head row are still found).
 */
export async function verifyLog(
  db: Db,
  jwks: JSONWebKeySet,
  o: { readonly archiveDir?: string; readonly from?: VerifiedPoint; readonly maxRecords?: number } = {},
): Promise<LogVerification> {
  const report = new VerifyReport();
  const headAtStart = await repo.readHead(db);
  // Oldest first: the legacy partition (the log before it was partitioned), then the months.
  const archives = (await db.selectFrom('audit_archives').selectAll().execute()).sort((a, b) =>
    a.period === 'legacy' ? -1 : b.period === 'legacy' ? 1 : a.period.localeCompare(b.period),
  );
  const archived = archives
    .filter((a) => a.last_seq !== null)
    .sort((a, b) => Number(a.first_seq) - Number(b.first_seq));
  const lastArchived = archived[archived.length - 1];
  const archiveAnchor =
    lastArchived && !o.archiveDir
      ? {
          seq: Number(lastArchived.last_seq),
          hash: lastArchived.last_hash!,
          frontier: JSON.parse(lastArchived.frontier!) as string[],
        }
      : undefined;
  // A start that was archived and dropped since it was verified: the online log starts after the archive.
  const resumed = o.from && !o.archiveDir && o.from.seq > (archiveAnchor?.seq ?? -1) ? o.from : undefined;
  const anchor = resumed ?? archiveAnchor;
  const chain = new ChainVerifier({
    contiguous: true,
    fromGenesis: !anchor,
    ...(anchor ? { after: { ...anchor, ...(resumed ? { what: 'the last one verified before' } : {}) } } : {}),
  });
  // The Merkle tree, rebuilt leaf by leaf: each signed tree head's root must be the root of the records up to it.
  const tree = anchor
    ? MerkleAccumulator.resume(
        anchor.seq,
        anchor.frontier.map((h) => Buffer.from(h, 'hex')),
      )
    : new MerkleAccumulator();
  const hashes = new Map<number, string>();
  let checkpoints = 0;
  let checkpointAfter = anchor?.seq ?? 0;
  const treeHeads = new TreeHeadQueue(db, anchor?.seq ?? 0);
  let treeHeadsChecked = 0;
  let hashAtHead: string | undefined;

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

  /** One record of the log, from an archive file or the database, in order. */
  const take = async (r: VerifiableRecord & Partial<Pick<ReadRecord, 'altered' | 'recordedAt'>>) => {
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
    if (!chain.problem && r.recordedAt) checkColumns(r as ChainedRecord, report);
    if (r.seq === headAtStart.seq) hashAtHead = r.hash;
    hashes.set(r.seq, r.hash);
    if (hashes.size >= PAGE) await flush(r.seq);
  };
  const flush = async (throughSeq: number) => {
    await checkCheckpoints(throughSeq);
    hashes.clear();
  };

  await repo.summarizeIndexes(db);
  if (o.archiveDir) {
    for (const a of archives) await verifyArchive(a, o.archiveDir, jwks, report, take, () => tree.frontier());
    if (chain.last) await flush(chain.last.seq);
  }
  let afterSeq = anchor?.seq ?? chain.last?.seq ?? 0;
  const max = o.maxRecords ?? Number.MAX_SAFE_INTEGER;
  let onlineChecked = 0;
  let limited = false;
  for (;;) {
    if (afterSeq >= headAtStart.seq) break;
    const limit = Math.min(PAGE, max - onlineChecked);
    if (limit <= 0) {
      limited = true;
      break;
    }
    const page = await readRecords(db, { afterSeq, throughSeq: headAtStart.seq, limit });
    for (const r of page) await take(r);
    onlineChecked += page.length;
    if (!page.length) break;
    afterSeq = page[page.length - 1]!.seq;
    await flush(afterSeq);
    if (page.length < limit) break;
  }
  const lastSeq = chain.last?.seq ?? anchor?.seq ?? 0;
  await checkCheckpoints(lastSeq);
  // What lies after the last record read was written since the start (left to the next run), unless the head row,
  // read after it, is behind it: records or signed checkpoints beyond the head.
  const beyond = limited ? [] : await repo.checkpointsAfter(db, lastSeq, 1000);
  const [next] = limited ? [] : await readRecords(db, { afterSeq: lastSeq, limit: 1 });
  const head = await repo.readHead(db);
  for (const c of beyond.filter((c) => Number(c.seq) > head.seq))
    report.fail('checkpoint', `seq ${c.seq}: signed, but there is no such record`);
  if (chain.problem) report.badRecord(chain.problem);

  if (archived.length) {
    const upTo = Number(lastArchived!.last_seq);
    report.note(
      'archives',
      o.archiveDir
        ? `${archives.length} archived months (seq 1 … ${upTo}) read from ${o.archiveDir}, each as its manifest signs`
        : `${archives.length} archived months (seq 1 … ${upTo}) not read: the online log is checked from seq ` +
            `${upTo + 1} on (pass --archives DIR for the whole log)`,
    );
  }
  report.note('records', `${chain.count} (seq ${chain.first?.seq ?? 0} … ${chain.last?.seq ?? 0})`);
  report.note(
    'chain',
    chain.problem
      ? `FAILED at seq ${chain.problem.seq}: ${chain.problem.problem}`
      : resumed
        ? `every hash recomputed from seq ${resumed.seq}, verified before, every link and sequence number checked`
        : anchor
          ? `every hash recomputed from the last archived record (seq ${anchor.seq}), every link and sequence ` +
            'number checked'
          : 'every hash recomputed from the genesis, every link and sequence number checked',
  );
  const headHash = headAtStart.seq === (anchor?.seq ?? -1) ? anchor!.hash : hashAtHead;
  if (next && next.seq > head.seq) {
    report.fail('head', `the head row (seq ${head.seq}) is not the last record (seq ${next.seq} follows it)`);
  } else if (limited) {
    report.note(
      'head',
      `seq ${headAtStart.seq}, not reached: ${headAtStart.seq - lastSeq} records left for a next run`,
    );
  } else if (headAtStart.seq > lastSeq || (headAtStart.seq > 0 && headHash !== headAtStart.hash)) {
    report.fail('head', `the head row (seq ${headAtStart.seq}) is not the last record (seq ${lastSeq})`);
  } else report.note('head', `seq ${headAtStart.seq}, matches the last record`);
  if (!report.failures.some((f) => f.startsWith('checkpoint')))
    report.note('checkpoints', `${checkpoints} signed heads, every signature valid and matching its record`);
  if (!report.failures.some((f) => f.startsWith('tree head')))
    report.note('tree heads', `${treeHeadsChecked} Merkle roots recomputed from the records, each as signed`);
  const last = chain.last;
  return {
    report,
    fromSeq: chain.first?.seq ?? (anchor?.seq ?? 0) + 1,
    checked: chain.count,
    end:
      report.ok && (last || anchor)
        ? {
            seq: last?.seq ?? anchor!.seq,
            hash: last?.hash ?? anchor!.hash,
            frontier: tree.frontier().map((h) => h.toString('hex')),
          }
        : undefined,
    reachedHead: !limited,
  };
}

/**
 * One archived month: its file against the manifest it was registered with (signature, hash, rows,
 * first and last record), its records passed on to the one chain; its tree head and frontier must
 * be what the records make.
 */
async function verifyArchive(
  a: AuditArchiveRow,
  dir: string,
  jwks: JSONWebKeySet,
  report: VerifyReport,
  take: (r: VerifiableRecord) => Promise<void>,
  frontier: () => Buffer[],
): Promise<void> {
  const label = `archive ${a.period}`;
  const file = path.join(dir, a.file);
  const fileReport = await verifyExportFile({ file, manifest: a.manifest, jwks, onRecord: take }).catch(
    (err: Error) => {
      report.fail(label, `cannot be read (${err.message})`);
      return undefined;
    },
  );
  if (!fileReport) return;
  for (const f of fileReport.failures) report.fail(label, f);
  if (fileReport.problem) report.badRecord(fileReport.problem);
  const manifest = await verifyJws(a.manifest, jwks, MANIFEST_TYP, manifestPayloadSchema).catch(() => undefined);
  if (
    manifest &&
    ((manifest.payload.first?.seq ?? null) !== num(a.first_seq) ||
      (manifest.payload.last?.seq ?? null) !== num(a.last_seq) ||
      (manifest.payload.last?.hash ?? null) !== a.last_hash ||
      manifest.payload.sha256 !== a.sha256)
  ) {
    report.fail(label, 'the registered archive is not the one its manifest signs');
  }
  if (a.frontier && a.frontier !== JSON.stringify(frontier().map((h) => h.toString('hex'))))
    report.fail(label, 'the Merkle frontier kept at archival is not what its records make');
  if (a.tree_head) {
    try {
      const { payload } = await verifyJws(a.tree_head, jwks, CHECKPOINT_TYP, checkpointPayloadSchema);
      if (payload.seq < Number(a.last_seq)) report.fail(label, `its tree head (size ${payload.seq}) does not cover it`);
    } catch (err) {
      report.fail(label, `its tree head's signature does not verify (${(err as Error).message})`);
    }
  }
  if (fileReport.ok) report.note(label, `${a.rows} records (seq ${a.first_seq ?? '-'} … ${a.last_seq ?? '-'}), intact`);
}

/** The tree heads (checkpoints with a root), in order, fetched a page at a time as the records pass them. */
class TreeHeadQueue {
  private queue: AuditCheckpointRow[] = [];
  private done = false;

  constructor(
    private readonly db: Db,
    private after: number,
  ) {}

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

const num = (v: string | null) => (v === null ? null : Number(v));

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
