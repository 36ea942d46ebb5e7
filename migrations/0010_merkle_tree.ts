import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * The Merkle tree over the audit log (src/audit/tree.ts): the hash of every complete, aligned
 * subtree of 64 leaves or more, by level (6 = 64 leaves) and index; smaller ranges are recomputed
 * from the records. About two rows per 64 records. Append-only, like the log. A checkpoint that
 * carries `root_hash` is a signed tree head: the root of the tree of its first `seq` records.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create table audit_tree_nodes (
    level smallint not null check (level between 6 and 62),
    idx bigint not null check (idx >= 0),
    hash bytea not null check (length(hash) = 32),
    primary key (level, idx)
  )`.execute(db);
  await sql`create trigger audit_tree_nodes_append_only before update or delete on audit_tree_nodes
    for each row execute function optgate_refuse_change()`.execute(db);
  await sql`create trigger audit_tree_nodes_no_truncate before truncate on audit_tree_nodes
    for each statement execute function optgate_refuse_change()`.execute(db);
  await sql`alter table audit_checkpoints add column root_hash text check (root_hash ~ '^[0-9a-f]{64}$')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_checkpoints drop column root_hash`.execute(db);
  await sql`drop table audit_tree_nodes`.execute(db);
}
