import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

// The signed checkpoints are the evidence against a rewrite of the whole chain: like the records,
// they cannot be emptied in one statement either.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create trigger audit_checkpoints_no_truncate before truncate on audit_checkpoints
    for each statement execute function optgate_refuse_change()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger audit_checkpoints_no_truncate on audit_checkpoints`.execute(db);
}
