import { type Kysely, sql } from 'kysely';

// Frozen: never edit a landed migration; add a new one.

/**
 * The chain head only moves forward: an update that lowers its `seq`, or changes its hash without
 * moving it, is refused, and so are deleting and truncating it. With the runtime role not owning
 * the table (src/platform/db/roles.ts), the service cannot disable this trigger: a rewound head
 * needs the owner or a superuser, and `audit verify --db` reports the records a signed head vouches
 * for that are no longer there.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create function optgate_head_forward_only() returns trigger language plpgsql as $$
    begin
      if tg_op <> 'UPDATE' then
        raise exception 'audit_head: % refused', lower(tg_op) using errcode = '42501';
      end if;
      if new.id <> old.id or new.seq < old.seq or (new.seq = old.seq and new.hash is distinct from old.hash)
         or new.recorded_at < old.recorded_at then
        raise exception 'audit_head: the head only moves forward (seq % to %)', old.seq, new.seq
          using errcode = '42501';
      end if;
      return new;
    end $$`.execute(db);
  await sql`create trigger audit_head_forward_only before update or delete on audit_head
    for each row execute function optgate_head_forward_only()`.execute(db);
  await sql`create trigger audit_head_no_truncate before truncate on audit_head
    for each statement execute function optgate_head_forward_only()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger audit_head_no_truncate on audit_head`.execute(db);
  await sql`drop trigger audit_head_forward_only on audit_head`.execute(db);
  await sql`drop function optgate_head_forward_only()`.execute(db);
}
