import type { JSONWebKeySet } from 'jose';
import type { Db } from '../platform/db/database';
import * as repo from './audit.repository';
import type { AuditCheckpointRow, AuditVerificationRow } from './audit.table';
import { readRecords } from './record-reader';
import { type LogVerification, type VerifiedPoint, verifyLog } from './verify-db';

/** Who ran a verification: the scheduled job, `npx optgate audit verify --db`, or the console's "Verify now". */
export type VerificationRunner = 'job' | 'cli' | 'console';

/** A verification as recorded, in the units the pages and the job use. */
export interface Verification {
  readonly id: string;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly recordsChecked: number;
  readonly result: 'intact' | 'broken' | 'error';
  readonly problem: string | null;
  readonly problemSeq: number | null;
  readonly ranBy: VerificationRunner;
}

/** What the console shows and warns of: the signed head, the records it does not cover yet, the verifications. */
export interface IntegrityState {
  readonly now: Date;
  /** The latest signed tree head or checkpoint. */
  readonly treeHead: AuditCheckpointRow | undefined;
  readonly headSeq: number;
  readonly unsignedRecords: number;
  /** When the oldest record no signed head covers was written: read only when the signed head is late. */
  readonly oldestUnsignedAt: Date | undefined;
  readonly latest: Verification | undefined;
  readonly lastIntact: Verification | undefined;
  /** A broken verification that no intact one has checked again since. */
  readonly openFailure: Verification | undefined;
  /** With no intact verification ever: when the first record of the online log was written. */
  readonly firstRecordAt: Date | undefined;
  readonly headLate: boolean;
  readonly verificationLate: boolean;
  readonly intervalMs: number;
}

export interface IntegrityDeps {
  readonly db: Db;
  /** The service's public keys: tree heads and checkpoints are checked against them. */
  readonly jwks: JSONWebKeySet;
  readonly clock: () => Date;
  /** How often the job runs (AUDIT_VERIFY_INTERVAL_MS). */
  readonly intervalMs: number;
  /** At most this many records per run (AUDIT_VERIFY_MAX_RECORDS); the next run continues. */
  readonly maxRecords: number;
  /** How often tree heads are signed (AUDIT_CHECKPOINT_INTERVAL_MS): the signed head is late well after it. */
  readonly checkpointIntervalMs: number;
}

/** The signed head is late when the oldest record it does not cover is older than this. */
export const headLateAfterMs = (checkpointIntervalMs: number) => Math.max(5 * 60_000, 60 * checkpointIntervalMs);
/** Verification is late when no run succeeded for two intervals and this. */
export const VERIFY_GRACE_MS = 10 * 60_000;
/** A run from the console is bounded further: the page waits for it. */
const CONSOLE_MAX_RECORDS = 200_000;

/**
 * Verifies the log in the database a part at a time and records each run (audit_verifications): each run starts
 * where the last intact one stopped (its last record's hash and the Merkle frontier there) and checks at most
 * `maxRecords` records towards the head: links, hashes, filter columns, and every checkpoint and tree head signed in
 * that range. A broken run does not move the start: the next run starts again before the problem, so the failure is
 * recorded again until an intact run checks that record (the log repaired from a backup).
 */
export class AuditIntegrity {
  private running: Promise<Verification & { reachedHead: boolean }> | undefined;

  constructor(private readonly d: IntegrityDeps) {}

  get intervalMs(): number {
    return this.d.intervalMs;
  }

  /** One run, recorded. One at a time in this process (a second caller shares the run in progress). */
  run(ranBy: VerificationRunner): Promise<Verification & { reachedHead: boolean }> {
    this.running ??= this.runOnce(ranBy).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async runOnce(ranBy: VerificationRunner): Promise<Verification & { reachedHead: boolean }> {
    const startedAt = this.d.clock();
    let from: VerifiedPoint | undefined;
    try {
      from = await this.startPoint();
      const maxRecords = ranBy === 'console' ? Math.min(this.d.maxRecords, CONSOLE_MAX_RECORDS) : this.d.maxRecords;
      const v = await verifyLog(this.d.db, this.d.jwks, { from, maxRecords });
      const row = await recordVerification(this.d.db, v, { startedAt, finishedAt: this.d.clock(), ranBy });
      return { ...row, reachedHead: v.reachedHead };
    } catch (err) {
      const row = await repo.insertVerification(this.d.db, {
        started_at: startedAt,
        finished_at: this.d.clock(),
        from_seq: (from?.seq ?? 0) + 1,
        to_seq: from?.seq ?? 0,
        to_hash: null,
        frontier: null,
        records_checked: 0,
        result: 'error',
        problem: short(`the verification could not finish: ${(err as Error).message}`),
        problem_seq: null,
        ran_by: ranBy,
      });
      return { ...view(row), reachedHead: false };
    }
  }

  /**
   * Where the next run starts: after the latest intact run, unless a broken run found a problem since that no
   * intact run has checked again: then after the latest intact run that ended before the problem. Undefined: from the
   * start of the online log.
   */
  async startPoint(): Promise<VerifiedPoint | undefined> {
    const failure = await this.openFailure();
    const [start] = await repo.latestVerifications(this.d.db, 1, {
      result: 'intact',
      ...(failure ? { toSeqBelow: failure.problemSeq ?? failure.fromSeq } : {}),
    });
    if (!start?.to_hash || !start.frontier) return undefined;
    return { seq: Number(start.to_seq), hash: start.to_hash, frontier: JSON.parse(start.frontier) as string[] };
  }

  private async openFailure(): Promise<Verification | undefined> {
    const [broken] = await repo.latestVerifications(this.d.db, 1, { result: 'broken' });
    if (!broken) return undefined;
    const failure = view(broken);
    return (await repo.verifiedSince(this.d.db, broken.id, failure.problemSeq ?? failure.fromSeq))
      ? undefined
      : failure;
  }

  /** The latest runs, newest first. */
  async recent(limit: number): Promise<Verification[]> {
    return (await repo.latestVerifications(this.d.db, limit)).map(view);
  }

  /**
   * The state the console shows and its banner warns of: a few single-row index reads (and, only while something is
   * late, one more to say since when).
   */
  async state(): Promise<IntegrityState> {
    const { db, clock, intervalMs } = this.d;
    const [treeHead, head, latest, intact, openFailure] = await Promise.all([
      repo.latestCheckpoint(db),
      repo.readHead(db),
      repo.latestVerifications(db, 1),
      repo.latestVerifications(db, 1, { result: 'intact' }),
      this.openFailure(),
    ]);
    const now = clock();
    const signedSeq = Number(treeHead?.seq ?? 0);
    const unsignedRecords = Math.max(0, head.seq - signedSeq);
    const headLimit = headLateAfterMs(this.d.checkpointIntervalMs);
    const firstAt = async (afterSeq: number) => (await readRecords(db, { afterSeq, limit: 1 }))[0]?.recordedAt;
    // The head may have been signed long ago and records written a moment ago: the oldest unsigned record says.
    const oldestUnsignedAt =
      unsignedRecords > 0 && (!treeHead || ageMs(now, treeHead.signed_at) > headLimit)
        ? await firstAt(signedSeq)
        : undefined;
    const lastIntact = intact[0] ? view(intact[0]) : undefined;
    const firstRecordAt = lastIntact || head.seq === 0 ? undefined : await firstAt(0);
    const since = lastIntact?.finishedAt ?? firstRecordAt;
    return {
      now,
      treeHead,
      headSeq: head.seq,
      unsignedRecords,
      oldestUnsignedAt,
      latest: latest[0] ? view(latest[0]) : undefined,
      lastIntact,
      openFailure,
      firstRecordAt,
      headLate: oldestUnsignedAt !== undefined && ageMs(now, oldestUnsignedAt) > headLimit,
      verificationLate: since !== undefined && ageMs(now, since) > 2 * intervalMs + VERIFY_GRACE_MS,
      intervalMs,
    };
  }
}

/** Records a verification run (the job's, the console's, or the CLI's `verify --db`). */
export async function recordVerification(
  db: Db,
  v: LogVerification,
  o: { readonly startedAt: Date; readonly finishedAt: Date; readonly ranBy: VerificationRunner },
): Promise<Verification> {
  const { report } = v;
  const problem = report.problem ? `seq ${report.problem.seq}: ${report.problem.problem}` : report.failures[0];
  const row = await repo.insertVerification(db, {
    started_at: o.startedAt,
    finished_at: o.finishedAt,
    from_seq: v.fromSeq,
    to_seq: v.end?.seq ?? v.fromSeq - 1 + v.checked,
    to_hash: v.end?.hash ?? null,
    frontier: v.end ? JSON.stringify(v.end.frontier) : null,
    records_checked: v.checked,
    result: report.ok ? 'intact' : 'broken',
    problem: problem === undefined ? null : short(problem),
    problem_seq: report.problem?.seq ?? null,
    ran_by: o.ranBy,
  });
  return view(row);
}

const short = (text: string) => (text.length > 300 ? `${text.slice(0, 299)}…` : text);
const ageMs = (now: Date, then: Date) => now.getTime() - then.getTime();

function view(r: AuditVerificationRow): Verification {
  return {
    id: r.id,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    fromSeq: Number(r.from_seq),
    toSeq: Number(r.to_seq),
    recordsChecked: Number(r.records_checked),
    result: r.result,
    problem: r.problem,
    problemSeq: r.problem_seq === null ? null : Number(r.problem_seq),
    ranBy: r.ran_by,
  };
}
