import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

export async function up(db: Kysely<any>): Promise<void> {
  // The hash chain. `content` is the canonical JSON that was hashed, kept byte for byte;
  // the other columns repeat parts of it for filtering. hash = sha256(prev_hash || "\n" || content).
  await db.schema
    .createTable('audit_records')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull().check(sql`type in ('consent_event', 'decision', 'staff_action')`))
    .addColumn('account_id', 'text')
    .addColumn('outcome', 'text', (c) => c.check(sql`outcome in ('allow', 'deny')`))
    .addColumn('content', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_records_account_idx').on('audit_records').columns(['account_id', 'seq']).execute();
  // recorded_at never decreases along seq: a BRIN index finds time ranges for almost no write cost.
  await sql`create index audit_records_time_idx on audit_records using brin (recorded_at)`.execute(db);
  await sql`create trigger audit_records_append_only before update or delete on audit_records
    for each row execute function optgate_refuse_change()`.execute(db);
  await sql`create trigger audit_records_no_truncate before truncate on audit_records
    for each statement execute function optgate_refuse_change()`.execute(db);

  // The chain head: one row, locked by every append, so that writers on every instance produce one gap-free chain.
  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await sql`insert into audit_head (id, seq, hash, recorded_at) values (1, 0, repeat('0', 64), 'epoch')`.execute(db);

  await db.schema
    .createTable('audit_checkpoints')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('signed_at', 'timestamptz', (c) => c.notNull())
    .addColumn('kid', 'text', (c) => c.notNull())
    .addColumn('jws', 'text', (c) => c.notNull())
    .execute();
  await sql`create trigger audit_checkpoints_append_only before update or delete on audit_checkpoints
    for each row execute function optgate_refuse_change()`.execute(db);

  await db.schema
    .createTable('audit_exports')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('filters', 'jsonb', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull().check(sql`format in ('ndjson', 'csv')`))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('queued', 'running', 'completed', 'failed')`))
    .addColumn('progress', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('rows', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('sha256', 'text')
    .addColumn('first_seq', 'bigint')
    .addColumn('last_seq', 'bigint')
    .addColumn('manifest', 'text')
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('completed_at', 'timestamptz')
    .execute();
  // Export files live in PostgreSQL, so that any instance can serve a download that another produced.
  await db.schema
    .createTable('audit_export_chunks')
    .addColumn('export_id', 'uuid', (c) => c.notNull().references('audit_exports.id').onDelete('cascade'))
    .addColumn('n', 'integer', (c) => c.notNull())
    .addColumn('data', 'bytea', (c) => c.notNull())
    .addPrimaryKeyConstraint('audit_export_chunks_pk', ['export_id', 'n'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_export_chunks').execute();
  await db.schema.dropTable('audit_exports').execute();
  await db.schema.dropTable('audit_checkpoints').execute();
  await db.schema.dropTable('audit_head').execute();
  await db.schema.dropTable('audit_records').execute();
}
