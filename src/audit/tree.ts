import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import { AppError } from '../platform/errors';
import { type Hash, leafHash, nodeHash, rootOf, type Subtree, splitPoint } from './merkle';
import { readRecords } from './record-reader';

/** Level of the smallest stored subtree: 2^6 = 64 leaves. Smaller ranges are rebuilt from the records. */
export const TILE_LEVEL = 6;
const TILE = 2 ** TILE_LEVEL;
/** Records read at a time while extending the tree. */
const PAGE = 64 * TILE;

/**
 * The Merkle tree over the audit log, in PostgreSQL (`audit_tree_nodes`): the hash of every
 * complete, aligned subtree of 64 leaves or more. Any range's hash is assembled from those and,
 * for the ragged right edge, from at most 63 records read again. `extend` is run by the signing
 * job before each tree head; proofs and roots are read by the API and the CLI.
 */
export class AuditTree {
  constructor(private readonly db: Db) {}

  /** Leaves covered by stored nodes: every complete tile up to here (a multiple of 64). */
  async built(): Promise<number> {
    const row = await this.db
      .selectFrom('audit_tree_nodes')
      .select((eb) => eb.fn.max('idx').as('last'))
      .where('level', '=', TILE_LEVEL)
      .executeTakeFirst();
    return row?.last === null || row?.last === undefined ? 0 : (Number(row.last) + 1) * TILE;
  }

  /**
   * Stores the nodes of every complete tile of the first `size` leaves, and every complete parent.
   * One builder at a time (a transaction-scoped advisory lock; another caller returns at once).
   */
  async extend(size: number): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      const { rows } = await sql<{
        locked: boolean;
      }>`select pg_try_advisory_xact_lock(hashtextextended('optgate:audit-tree', 0)) as locked`.execute(tx);
      if (!rows[0]?.locked) return;
      const tree = new AuditTree(tx);
      const target = Math.floor(size / TILE) * TILE;
      for (let from = await tree.built(); from < target; ) {
        const to = Math.min(target, from + PAGE);
        const leaves = await readLeaves(tx, from, to);
        const fresh = new Map<string, Hash>();
        for (let t = from; t < to; t += TILE) {
          fresh.set(key(TILE_LEVEL, t / TILE), rootOf(leaves.slice(t - from, t - from + TILE)));
        }
        // Parents completed by the new nodes: a right child (odd index) with its left sibling, stored or new.
        let level = TILE_LEVEL;
        let children = [...fresh.keys()].map(parseKey).filter(([l]) => l === level);
        while (children.length) {
          const parents: [number, number][] = [];
          const rights = children.filter(([, i]) => i % 2 === 1);
          const lefts = await tree.nodes(
            rights.filter(([, i]) => !fresh.has(key(level, i - 1))).map(([, i]) => [level, i - 1] as const),
          );
          for (const [, i] of rights) {
            const left = fresh.get(key(level, i - 1)) ?? lefts.get(key(level, i - 1));
            if (!left) throw new Error(`audit tree: node ${level}/${i - 1} missing`);
            const parent = nodeHash(left, fresh.get(key(level, i))!);
            fresh.set(key(level + 1, (i - 1) / 2), parent);
            parents.push([level + 1, (i - 1) / 2]);
          }
          level++;
          children = parents;
        }
        await tx
          .insertInto('audit_tree_nodes')
          .values(
            [...fresh].map(([k, hash]) => {
              const [l, i] = parseKey(k);
              return { level: l, idx: String(i), hash };
            }),
          )
          .onConflict((oc) => oc.columns(['level', 'idx']).doNothing())
          .execute();
        from = to;
      }
    });
  }

  /** The root of the tree of the first `size` leaves (size ≥ 1, within what is built plus one ragged tile). */
  async root(size: number): Promise<Hash> {
    const reader = await this.reader([[0, size]]);
    return reader.subtree(0, size);
  }

  /**
   * A reader for the given ranges: it fetches the stored nodes and the records they need at once,
   * then answers `subtree` for those ranges (and any range inside them the RFC's recursion asks for).
   */
  async reader(ranges: readonly (readonly [number, number])[]): Promise<TreeReader> {
    const built = await this.built();
    const nodes: (readonly [number, number])[] = [];
    const leafRanges: [number, number][] = [];
    const plan = (from: number, to: number) => {
      const size = to - from;
      const level = Math.log2(size);
      if (size >= TILE && Number.isInteger(level) && from % size === 0 && to <= built) nodes.push([level, from / size]);
      else if (size <= TILE) leafRanges.push([from, to]);
      else {
        const k = splitPoint(size);
        plan(from, from + k);
        plan(from + k, to);
      }
    };
    for (const [from, to] of ranges) plan(from, to);
    const stored = await this.nodes(nodes);
    const leaves = new Map<number, Hash>();
    for (const [from, to] of mergeRanges(leafRanges)) {
      const hashes = await readLeaves(this.db, from, to);
      for (let i = 0; i < hashes.length; i++) leaves.set(from + i, hashes[i]!);
    }
    return new TreeReader(built, stored, leaves);
  }

  /** Proof inputs: records the ranges a proof asks for (first pass), then answers them from one reader. */
  async prove(proof: (subtree: Subtree) => Promise<Hash[]>): Promise<Hash[]> {
    const ranges: [number, number][] = [];
    const zero = Buffer.alloc(32);
    await proof(async (from, to) => {
      ranges.push([from, to]);
      return zero;
    });
    const reader = await this.reader(ranges);
    return proof(async (from, to) => reader.subtree(from, to));
  }

  private async nodes(wanted: readonly (readonly [number, number])[]): Promise<Map<string, Hash>> {
    const out = new Map<string, Hash>();
    if (!wanted.length) return out;
    const { rows } = await sql<{ level: number; idx: string; hash: Buffer }>`
      select n.level, n.idx, n.hash from audit_tree_nodes n
      join unnest(${wanted.map(([l]) => l)}::smallint[], ${wanted.map(([, i]) => String(i))}::bigint[]) w(level, idx)
        on n.level = w.level and n.idx = w.idx`.execute(this.db);
    for (const r of rows) out.set(key(r.level, Number(r.idx)), r.hash);
    return out;
  }
}

/** Answers the hashes of ranges from what `AuditTree.reader` fetched. */
export class TreeReader {
  constructor(
    private readonly built: number,
    private readonly stored: Map<string, Hash>,
    private readonly leaves: Map<number, Hash>,
  ) {}

  subtree(from: number, to: number): Hash {
    const size = to - from;
    const level = Math.log2(size);
    if (size >= TILE && Number.isInteger(level) && from % size === 0 && to <= this.built) {
      const hash = this.stored.get(key(level, from / size));
      if (!hash) throw new Error(`audit tree: node ${level}/${from / size} missing`);
      return hash;
    }
    if (size <= TILE) {
      const hashes: Hash[] = [];
      for (let i = from; i < to; i++) {
        const h = this.leaves.get(i);
        if (!h) throw new Error(`audit tree: leaf ${i} missing`);
        hashes.push(h);
      }
      return rootOf(hashes);
    }
    const k = splitPoint(size);
    return nodeHash(this.subtree(from, from + k), this.subtree(from + k, to));
  }
}

/**
 * Leaf hashes of leaves `[from, to)`: records `from + 1 … to`. Records of an archived month are
 * gone from the database; the hashes of those that share a tile with the online log are kept
 * (`audit_archive_edge`). Any other archived leaf: a 410, its proof is the archive's business.
 */
async function readLeaves(db: Db, from: number, to: number): Promise<Hash[]> {
  const records = await readRecords(db, { afterSeq: from, throughSeq: to, limit: to - from });
  const hashes = new Map(records.map((r) => [r.seq, r.hash] as const));
  if (hashes.size < to - from) {
    const edge = await db
      .selectFrom('audit_archive_edge')
      .select(['seq', 'hash'])
      .where('seq', '>', String(from))
      .where('seq', '<=', String(to))
      .execute();
    for (const e of edge) hashes.set(Number(e.seq), e.hash);
  }
  const out: Hash[] = [];
  for (let seq = from + 1; seq <= to; seq++) {
    const hash = hashes.get(seq);
    if (hash) {
      out.push(leafHash(hash));
      continue;
    }
    await refuseArchived(db, seq);
    throw new Error(`audit tree: the log does not hold record ${seq}`);
  }
  return out;
}

function mergeRanges(ranges: [number, number][]): [number, number][] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [from, to] of sorted) {
    const last = out[out.length - 1];
    if (last && from <= last[1]) last[1] = Math.max(last[1], to);
    else out.push([from, to]);
  }
  return out;
}

/** A 410 when record `seq` was archived: its proofs come from the archive file. */
export async function refuseArchived(db: Db, seq: number): Promise<void> {
  const archived = await db
    .selectFrom('audit_archives')
    .select('period')
    .where('first_seq', '<=', String(seq))
    .where('last_seq', '>=', String(seq))
    .executeTakeFirst();
  if (archived) {
    throw new AppError('gone', `Record ${seq} is archived (${archived.period}): check it against the archive file.`);
  }
}

const key = (level: number, idx: number) => `${level}:${idx}`;
const parseKey = (k: string) => k.split(':').map(Number) as [number, number];
