import { type Insertable, sql } from 'kysely';
import type { Db } from '../platform/db/database';
import type {
  WebhookDeliveryRow,
  WebhookDeliveryTable,
  WebhookEndpointRow,
  WebhookEndpointTable,
} from './webhook.table';

export type NewEndpoint = Insertable<WebhookEndpointTable>;
export type NewDelivery = Insertable<WebhookDeliveryTable>;

export async function insertEndpoint(db: Db, row: NewEndpoint): Promise<WebhookEndpointRow> {
  return db.insertInto('webhook_endpoints').values(row).returningAll().executeTakeFirstOrThrow();
}

/** A client's live endpoint; another client's, or a deleted one, is none. */
export async function findEndpoint(db: Db, clientId: string, id: string): Promise<WebhookEndpointRow | undefined> {
  return db
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('id', '=', id)
    .where('client_id', '=', clientId)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
}

export async function findClientEndpoints(db: Db, clientId: string): Promise<WebhookEndpointRow[]> {
  return db
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('client_id', '=', clientId)
    .where('deleted_at', 'is', null)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

export async function markEndpointDeleted(db: Db, clientId: string, id: string, now: Date): Promise<boolean> {
  const r = await db
    .updateTable('webhook_endpoints')
    .set({ deleted_at: now })
    .where('id', '=', id)
    .where('client_id', '=', clientId)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** Every live endpoint: what the dispatcher fans out to. */
export async function findLiveEndpoints(db: Db): Promise<Pick<WebhookEndpointRow, 'id' | 'events'>[]> {
  return db.selectFrom('webhook_endpoints').select(['id', 'events']).where('deleted_at', 'is', null).execute();
}

export async function insertDeliveries(db: Db, rows: readonly NewDelivery[]): Promise<void> {
  if (!rows.length) return;
  // Repeats (the same event for the same endpoint) are impossible by the cursor; the constraint makes sure.
  await db
    .insertInto('webhook_deliveries')
    .values([...rows])
    .onConflict((oc) => oc.columns(['endpoint_id', 'event', 'feed_seq']).doNothing())
    .execute();
}

/** Of these consents, those whose coming expiry was announced already. */
export async function findAnnounced(db: Db, consentIds: readonly string[]): Promise<Set<string>> {
  if (!consentIds.length) return new Set();
  const rows = await db
    .selectFrom('webhook_expiring')
    .select('consent_id')
    .where('consent_id', 'in', [...consentIds])
    .execute();
  return new Set(rows.map((r) => r.consent_id));
}

/** Marks consents announced; returns those this call marked (not another instance before it). */
export async function markAnnounced(db: Db, consentIds: readonly string[], now: Date): Promise<Set<string>> {
  if (!consentIds.length) return new Set();
  const rows = await db
    .insertInto('webhook_expiring')
    .values(consentIds.map((consent_id) => ({ consent_id, announced_at: now })))
    .onConflict((oc) => oc.column('consent_id').doNothing())
    .returning('consent_id')
    .execute();
  return new Set(rows.map((r) => r.consent_id));
}

export async function readCursor(db: Db): Promise<number> {
  const row = await db.selectFrom('webhook_cursor').select('feed_seq').where('id', '=', 1).executeTakeFirstOrThrow();
  return Number(row.feed_seq);
}

/** Moves the cursor from `from` to `to`; false when another instance moved it first (the caller rolls back). */
export async function advanceCursor(db: Db, from: number, to: number): Promise<boolean> {
  const r = await db
    .updateTable('webhook_cursor')
    .set({ feed_seq: String(to) })
    .where('id', '=', 1)
    .where('feed_seq', '=', String(from))
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/**
 * Each live endpoint's oldest pending delivery, when it is due and not claimed: only the oldest may be attempted, so
 * that an endpoint gets its events in order.
 */
export async function findDueHeads(db: Db, now: Date, limit: number): Promise<{ id: string; endpoint_id: string }[]> {
  const { rows } = await sql<{ id: string; endpoint_id: string }>`
    select h.id, h.endpoint_id from (
      select distinct on (d.endpoint_id) d.id, d.endpoint_id, d.next_attempt_at, d.locked_until
      from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id
      where d.status = 'pending' and e.deleted_at is null
      order by d.endpoint_id, d.seq
    ) h
    where h.next_attempt_at <= ${now} and (h.locked_until is null or h.locked_until <= ${now})
    order by h.next_attempt_at
    limit ${limit}`.execute(db);
  return rows;
}

/** The live endpoint's oldest pending delivery, if it is due and not claimed. */
export async function findEndpointHead(db: Db, endpointId: string, now: Date): Promise<string | undefined> {
  const head = await db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
    .select(['d.id', 'd.next_attempt_at', 'd.locked_until'])
    .where('d.endpoint_id', '=', endpointId)
    .where('e.deleted_at', 'is', null)
    .where('d.status', '=', 'pending')
    .orderBy('d.seq')
    .limit(1)
    .executeTakeFirst();
  if (!head || head.next_attempt_at > now || (head.locked_until && head.locked_until > now)) return undefined;
  return head.id;
}

/** Claims a pending delivery for one attempt until `until`; undefined when another attempt holds it. */
export async function claimDelivery(
  db: Db,
  id: string,
  now: Date,
  until: Date,
): Promise<(WebhookDeliveryRow & { url: string; secret: string }) | undefined> {
  const claimed = await db
    .updateTable('webhook_deliveries')
    .set({ locked_until: until })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
    .returningAll()
    .executeTakeFirst();
  if (!claimed) return undefined;
  const endpoint = await db
    .selectFrom('webhook_endpoints')
    .select(['url', 'secret'])
    .where('id', '=', claimed.endpoint_id)
    .executeTakeFirstOrThrow();
  return { ...claimed, ...endpoint };
}

export async function recordAttempt(
  db: Db,
  id: string,
  result: {
    status: 'pending' | 'delivered' | 'dead';
    attempts: number;
    lastStatus: number | null;
    lastError: string | null;
    nextAttemptAt: Date;
    completedAt: Date | null;
  },
): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({
      status: result.status,
      attempts: result.attempts,
      last_status: result.lastStatus,
      last_error: result.lastError,
      next_attempt_at: result.nextAttemptAt,
      completed_at: result.completedAt,
      locked_until: null,
    })
    .where('id', '=', id)
    .execute();
}

/** An endpoint's deliveries, newest first, before `beforeSeq` when given. */
export async function findDeliveries(
  db: Db,
  endpointId: string,
  o: { beforeSeq?: number; status?: string; limit: number },
): Promise<WebhookDeliveryRow[]> {
  let q = db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('endpoint_id', '=', endpointId)
    .orderBy('seq', 'desc')
    .limit(o.limit);
  if (o.beforeSeq !== undefined) q = q.where('seq', '<', String(o.beforeSeq));
  if (o.status) q = q.where('status', '=', o.status as WebhookDeliveryRow['status']);
  return q.execute();
}

/** Puts a finished (dead or delivered) delivery back as pending, with a fresh set of retries. */
export async function requeueDelivery(
  db: Db,
  endpointId: string,
  id: string,
  now: Date,
): Promise<WebhookDeliveryRow | undefined> {
  return db
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', attempts: 0, next_attempt_at: now, completed_at: null, locked_until: null })
    .where('id', '=', id)
    .where('endpoint_id', '=', endpointId)
    .where('status', 'in', ['dead', 'delivered'])
    .returningAll()
    .executeTakeFirst();
}

export async function findDelivery(db: Db, endpointId: string, id: string): Promise<WebhookDeliveryRow | undefined> {
  return db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('id', '=', id)
    .where('endpoint_id', '=', endpointId)
    .executeTakeFirst();
}

/** Pending deliveries of live endpoints, and when the oldest was created. */
export async function pendingSummary(db: Db): Promise<{ pending: number; oldest: Date | null }> {
  const { rows } = await sql<{ pending: string; oldest: Date | null }>`
    select count(*) as pending, min(d.created_at) as oldest
    from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id
    where d.status = 'pending' and e.deleted_at is null`.execute(db);
  return { pending: Number(rows[0]?.pending ?? 0), oldest: rows[0]?.oldest ?? null };
}
