import type { Insertable } from 'kysely';
import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import type { ConsentEventTable, ConsentReceiptRow, ConsentStateRow } from './consent.table';

export type NewConsentEvent = Insertable<ConsentEventTable>;

/** Serialises every consent change of one account (including rows that do not exist yet) until the transaction ends. */
export async function lockAccountConsents(trx: Db, accountId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`consent:${accountId}`}, 0))`.execute(trx);
}

export async function findStates(db: Db, accountId: string): Promise<ConsentStateRow[]> {
  return db
    .selectFrom('consent_state')
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy('purpose')
    .orderBy('category')
    .execute();
}

/** Inserts events in order; returns their feed ids in the same order. */
export async function insertEvents(trx: Db, events: readonly NewConsentEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const rows = await trx
    .insertInto('consent_events')
    .values([...events])
    .returning(['id', 'event_id'])
    .execute();
  const ids = new Map(rows.map((r) => [r.event_id, r.id] as const));
  return events.map((e) => ids.get(e.event_id)!);
}

export async function upsertStates(trx: Db, states: readonly ConsentStateRow[]): Promise<void> {
  if (states.length === 0) return;
  await trx
    .insertInto('consent_state')
    .values([...states])
    .onConflict((oc) =>
      oc.columns(['account_id', 'purpose', 'category']).doUpdateSet((eb) => ({
        state: eb.ref('excluded.state'),
        consent_id: eb.ref('excluded.consent_id'),
        notice_version: eb.ref('excluded.notice_version'),
        granted_at: eb.ref('excluded.granted_at'),
        expires_at: eb.ref('excluded.expires_at'),
        revoked_at: eb.ref('excluded.revoked_at'),
        updated_at: eb.ref('excluded.updated_at'),
        recipients: eb.ref('excluded.recipients'),
        last_event_id: eb.ref('excluded.last_event_id'),
      })),
    )
    .execute();
}

export type GrantRow = ConsentStateRow & { notice_sha256: string };

/** Grants, with the hash of the notice they were given under (the grant's own event), for an event that ends them. */
const grants = (trx: Db) =>
  trx
    .selectFrom('consent_state as s')
    .innerJoin('consent_events as e', 'e.event_id', 's.consent_id')
    .selectAll('s')
    .select('e.notice_sha256')
    .where('s.state', '=', 'granted');

/**
 * Grants whose term has run out and that no event has marked expired yet, oldest first, locked for the caller's
 * transaction.
 */
export async function lockOverdueGrants(trx: Db, now: Date, limit: number): Promise<GrantRow[]> {
  return grants(trx)
    .where('s.expires_at', '<=', now)
    .orderBy('s.expires_at')
    .limit(limit)
    .forUpdate('s')
    .skipLocked()
    .execute();
}

/**
 * Grants in force whose term ends in (now, until], in expiry order, after the keyset `after` (along the partial index
 * of granted expiries).
 */
export async function findGrantsExpiring(
  db: Db,
  o: { now: Date; until: Date; after?: { expiresAt: Date; consentId: string }; limit: number },
): Promise<ConsentStateRow[]> {
  let q = db
    .selectFrom('consent_state')
    .selectAll()
    .where('state', '=', 'granted')
    .where('expires_at', '>', o.now)
    .where('expires_at', '<=', o.until)
    .orderBy('expires_at')
    .orderBy('consent_id')
    .limit(o.limit);
  const after = o.after;
  if (after) {
    q = q.where((eb) =>
      eb.or([
        eb('expires_at', '>', after.expiresAt),
        eb.and([eb('expires_at', '=', after.expiresAt), eb('consent_id', '>', after.consentId)]),
      ]),
    );
  }
  return q.execute();
}

/** The grants still in force of these accounts, locked for the caller's transaction. */
export async function lockGrantsInForce(trx: Db, accountIds: readonly string[], now: Date): Promise<GrantRow[]> {
  if (accountIds.length === 0) return [];
  return grants(trx)
    .where('s.account_id', 'in', [...accountIds])
    .where('s.expires_at', '>', now)
    .orderBy('s.account_id')
    .orderBy('s.purpose')
    .orderBy('s.category')
    .forUpdate('s')
    .execute();
}

export async function findEventsByIds(db: Db, eventIds: readonly string[]) {
  if (eventIds.length === 0) return [];
  return db
    .selectFrom('consent_events')
    .selectAll()
    .where('event_id', 'in', [...eventIds])
    .execute();
}

/** The choices (not the system's expiries and lapses) of these accounts made in [from, to], oldest first. */
export async function findChoices(db: Db, accountIds: readonly string[], from: Date, to: Date) {
  if (accountIds.length === 0) return [];
  return db
    .selectFrom('consent_events')
    .selectAll()
    .where('account_id', 'in', [...accountIds])
    .where('channel', '<>', 'system')
    .where('occurred_at', '>=', from)
    .where('occurred_at', '<=', to)
    .orderBy('account_id')
    .orderBy('id')
    .execute();
}

/** One account's events, newest first, keyset-paginated by feed id. */
export async function findAccountEvents(db: Db, accountId: string, o: { beforeId?: string; limit: number }) {
  let q = db
    .selectFrom('consent_events')
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy('id', 'desc')
    .limit(o.limit);
  if (o.beforeId) q = q.where('id', '<', o.beforeId);
  return q.execute();
}

/** Stores an act's receipt, in the transaction of its events (before them: they name it). */
export async function insertReceipt(trx: Db, receipt: ConsentReceiptRow): Promise<void> {
  await trx.insertInto('consent_receipts').values(receipt).execute();
}

/**
 * Stores a receipt made on first request (of an event without one), unless another request stored it first; returns
 * the one stored, so that concurrent first requests end with the same bytes.
 */
export async function insertReceiptOnce(db: Db, receipt: ConsentReceiptRow): Promise<ConsentReceiptRow> {
  await db
    .insertInto('consent_receipts')
    .values(receipt)
    .onConflict((oc) => oc.column('receipt_id').doNothing())
    .execute();
  return (await findReceipt(db, receipt.receipt_id))!;
}

export async function findReceipt(db: Db, receiptId: string): Promise<ConsentReceiptRow | undefined> {
  return db.selectFrom('consent_receipts').selectAll().where('receipt_id', '=', receiptId).executeTakeFirst();
}
