import { createHmac, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { sql } from 'kysely';
import type { ServiceKeys } from '../platform/auth/keys';
import type { Db } from '../platform/db/database';
import * as repo from './audit.repository';
import type { ChainedRecord } from './chain';
import { signManifest, writeRecords } from './export.service';
import { type ExportFilters, ndjsonLine, pseudonymisedLine } from './formats';
import { frontierSizes } from './merkle';
import { readRecords } from './record-reader';
import { AuditTree, TILE_LEVEL } from './tree';
import { verifyExportFile } from './verify-file';

/**
 * Retention: the log is partitioned by month (migration 0011); a month past the retention
 * (`AUDIT_RETENTION_MONTHS`) is archived, then dropped. An archive is three files in the archive
 * directory: the month's records as an NDJSON export (`optgate-audit-2026-09.ndjson`), its signed
 * manifest (`….manifest.jws`) and the signed tree head that covers its last record
 * (`….tree-head.jws`). The file is verified (offline, as anyone would, with the published keys)
 * before the archive is registered in `audit_archives`, and only then does the database drop the
 * month, after its own checks (optgate_drop_audit_partition). What the online log still needs of
 * the archived records is kept: the Merkle tree's frontier after the last one (for `audit verify
 * --db`, which continues the tree from there), and the hashes of the archived records that share
 * a 64-leaf tile with the first online one (for the proofs of the records after them).
 */
export interface ArchiveDeps {
  readonly db: Db;
  readonly keys: ServiceKeys;
  readonly clock: () => Date;
  /** Where archives are written. */
  readonly dir: string;
  /** The ids of accounts closed at least this long are pseudonymised in what is archived. */
  readonly pseudonymiseAfterMs: number;
  /** The share of its time the archive's file is written (writeRecords' `pace`, as for exports). */
  readonly pace: number;
  /** Signs a tree head at the chain's head (the signing job's work). */
  readonly signTreeHead: () => Promise<unknown>;
}

export interface ArchivedMonth {
  readonly period: string;
  readonly rows: number;
  /** Records written with their account id pseudonymised. */
  readonly pseudonymised: number;
  readonly bytes: number;
  readonly file: string;
}

interface DuePeriod {
  readonly period: string;
  readonly from: string | null;
  readonly to: string;
}

export class AuditArchiver {
  constructor(private readonly deps: ArchiveDeps) {}

  /**
   * Creates the coming months' partitions, then archives and drops every month past the retention,
   * oldest first. One archiver at a time (a session advisory lock on a connection of its own):
   * another returns at once, having archived nothing.
   */
  async run(): Promise<ArchivedMonth[]> {
    await this.ensurePartitions();
    return this.deps.db.connection().execute(async (conn) => {
      const { rows } = await sql<{ locked: boolean }>`
        select pg_try_advisory_lock(hashtextextended('optgate:audit-archive', 0)) as locked`.execute(conn);
      if (!rows[0]?.locked) return [];
      try {
        const done: ArchivedMonth[] = [];
        for (const p of await this.due()) done.push(await this.archive(p));
        return done;
      } finally {
        await sql`select pg_advisory_unlock(hashtextextended('optgate:audit-archive', 0))`.execute(conn);
      }
    });
  }

  /** This month's partitions and the next two: an append never has to create one. */
  async ensurePartitions(): Promise<void> {
    const now = this.deps.clock();
    await sql`select optgate_audit_partition(${now}::timestamptz + make_interval(months => n))
      from generate_series(0, 2) n`.execute(this.deps.db);
  }

  /** The months whose partitions lie wholly before the retention (the database's clock, as its own check uses). */
  async due(): Promise<DuePeriod[]> {
    const { rows } = await sql<{ name: string; until: string }>`
      select c.relname as name, to_char(coalesce(
        case when c.relname = 'audit_verdicts_legacy' then s.legacy_until
             else to_date(substr(c.relname, 17), 'YYYYMM') + interval '1 month' end, 'infinity'), 'YYYY-MM-DD') as until
      from pg_inherits i join pg_class c on c.oid = i.inhrelid cross join audit_settings s
      where i.inhparent = 'audit_verdicts'::regclass
        and coalesce(case when c.relname = 'audit_verdicts_legacy' then s.legacy_until
              else to_date(substr(c.relname, 17), 'YYYYMM') + interval '1 month' end, 'infinity')
            <= date_trunc('month', now() at time zone 'UTC') - make_interval(months => s.retention_months)
      order by 2`.execute(this.deps.db);
    return rows.map(({ name, until }) => {
      const to = `${until}T00:00:00.000Z`;
      if (name === 'audit_verdicts_legacy') return { period: 'legacy', from: null, to };
      const period = `${name.slice(16, 20)}-${name.slice(20, 22)}`;
      return { period, from: `${period}-01T00:00:00.000Z`, to };
    });
  }

  /** Archives one month and drops it. Run again after a failure, it starts the month's files afresh. */
  async archive(p: DuePeriod): Promise<ArchivedMonth> {
    const { db, keys, dir } = this.deps;
    const registered = await db
      .selectFrom('audit_archives')
      .selectAll()
      .where('period', '=', p.period)
      .executeTakeFirst();
    if (registered) {
      // Registered, not dropped: the drop failed last time.
      await sql`select optgate_drop_audit_partition(${p.period})`.execute(db);
      const { rows, pseudonymised, bytes, file } = registered;
      return { period: p.period, rows: Number(rows), pseudonymised: Number(pseudonymised), bytes: Number(bytes), file };
    }

    const filters: ExportFilters = { ...(p.from ? { from: p.from } : {}), to: p.to };
    const head = await repo.readHead(db);
    await repo.summarizeIndexes(db);
    const base = `optgate-audit-${p.period}`;
    const file = `${base}.ndjson`;
    await mkdir(dir, { recursive: true });
    const partial = path.join(dir, `${file}.partial`);
    const out = createWriteStream(partial);
    let written: Awaited<ReturnType<typeof writeRecords>>;
    let pseudonymised = 0;
    const closedBefore = new Date(this.deps.clock().getTime() - this.deps.pseudonymiseAfterMs);
    try {
      written = await writeRecords(db, {
        filters,
        throughSeq: head.seq,
        format: 'ndjson',
        pace: this.deps.pace,
        write: (buf) => (out.write(buf) ? Promise.resolve() : new Promise((resolve) => out.once('drain', resolve))),
        encode: async (page) => {
          const closed = await this.closedAccounts(page, closedBefore);
          return page
            .map((r) => {
              if (r.accountId === null || !closed.has(r.accountId)) return ndjsonLine(r);
              pseudonymised++;
              return pseudonymisedLine(r, this.pseudonymOf(r.accountId));
            })
            .join('');
        },
      });
    } finally {
      out.end();
      await finished(out);
    }

    const { first, last } = written;
    // A tree head that covers the month: the signing job's latest, or one signed now.
    let treeHead = await repo.findTreeHead(db);
    if (last && (!treeHead || Number(treeHead.seq) < last.seq)) {
      await this.deps.signTreeHead();
      treeHead = await repo.findTreeHead(db);
    }
    if (last && (!treeHead || Number(treeHead.seq) < last.seq)) {
      await rm(partial, { force: true });
      throw new Error(`audit archive ${p.period}: no signed tree head covers seq ${last.seq} yet`);
    }

    const now = this.deps.clock();
    const manifest = await signManifest(db, keys, {
      id: randomUUID(),
      createdAt: now,
      completedAt: now,
      format: 'ndjson',
      filters,
      file: written,
    });
    // Verified as anyone would: the file against its signed manifest, with the published keys.
    const report = await verifyExportFile({ file: partial, manifest, jwks: keys.publicJwks });
    if (!report.ok) {
      await rm(partial, { force: true });
      throw new Error(`audit archive ${p.period}: the archive does not verify:\n${report.render('')}`);
    }

    const frontier = last ? await this.frontier(last.seq) : null;
    await rename(partial, path.join(dir, file));
    await writeFile(path.join(dir, `${base}.manifest.jws`), `${manifest}\n`);
    if (last) await writeFile(path.join(dir, `${base}.tree-head.jws`), `${treeHead!.jws}\n`);

    await db.transaction().execute(async (tx) => {
      if (last) {
        // The archived records of the tile the online log continues: proofs of the records after them need them.
        const tile = 2 ** TILE_LEVEL;
        const edgeFrom = Math.floor(last.seq / tile) * tile;
        const edge = await readRecords(tx, { afterSeq: edgeFrom, throughSeq: last.seq, limit: tile });
        if (edge.length) {
          await tx
            .insertInto('audit_archive_edge')
            .values(edge.map((r) => ({ seq: r.seq, hash: r.hash })))
            .onConflict((oc) => oc.column('seq').doNothing())
            .execute();
        }
      }
      await tx
        .insertInto('audit_archives')
        .values({
          period: p.period,
          first_seq: first?.seq ?? null,
          last_seq: last?.seq ?? null,
          prev_hash: first?.prevHash ?? null,
          last_hash: last?.hash ?? null,
          rows: written.rows,
          pseudonymised,
          file,
          bytes: written.bytes,
          sha256: written.sha256,
          manifest,
          tree_head: last ? treeHead!.jws : null,
          frontier: frontier && JSON.stringify(frontier),
          archived_at: now,
        })
        .execute();
    });
    await sql`select optgate_drop_audit_partition(${p.period})`.execute(db);
    return { period: p.period, rows: written.rows, pseudonymised, bytes: written.bytes, file };
  }

  /**
   * Of the accounts named by format 3 records of the page, those closed before `before`: their ids
   * are pseudonymised in the archive (format 1 and 2 records commit to the id itself, and keep it).
   */
  private async closedAccounts(page: readonly ChainedRecord[], before: Date): Promise<Set<string>> {
    const ids = [...new Set(page.flatMap((r) => (r.accountSalt && r.accountId !== null ? [r.accountId] : [])))];
    if (!ids.length) return new Set();
    const rows = await this.deps.db
      .selectFrom('accounts')
      .select('account_id')
      .where(sql<boolean>`account_id = any(${ids}::text[])`)
      .where('closed_at', '<=', before)
      .execute();
    return new Set(rows.map((r) => r.account_id));
  }

  /** A keyed hash of an account id (the evidence key): one id, one pseudonym; only the key holder can link them. */
  private pseudonymOf(accountId: string): string {
    const mac = createHmac('sha256', this.deps.keys.evidenceKey).update(`account-pseudonym\n${accountId}`);
    return `pseudonym:${mac.digest('hex').slice(0, 32)}`;
  }

  /** The roots of the perfect subtrees of the tree of the first `size` records, left to right (hex). */
  private async frontier(size: number): Promise<string[]> {
    const ranges: [number, number][] = [];
    let from = 0;
    for (const s of frontierSizes(size)) {
      ranges.push([from, from + s]);
      from += s;
    }
    const tree = new AuditTree(this.deps.db);
    await tree.extend(size);
    const reader = await tree.reader(ranges);
    return ranges.map(([a, b]) => reader.subtree(a, b).toString('hex'));
  }
}
