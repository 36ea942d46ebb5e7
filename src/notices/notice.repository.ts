import type { Insertable } from 'kysely';
import type { Db } from '../platform/db/database';
import type { NoticeDeliveryRow, NoticeDeliveryTable } from './notice.table';

export type NewNoticeDelivery = Insertable<NoticeDeliveryTable>;

/** Appends one delivery (inside the caller's transaction, with its audit record). */
export async function insertDelivery(db: Db, row: NewNoticeDelivery): Promise<NoticeDeliveryRow> {
  return db.insertInto('notice_deliveries').values(row).returningAll().executeTakeFirstOrThrow();
}

/** One account's deliveries, newest first, before `beforeSeq` when given. */
export async function findAccountDeliveries(
  db: Db,
  accountId: string,
  o: { beforeSeq?: number; limit: number },
): Promise<NoticeDeliveryRow[]> {
  let q = db
    .selectFrom('notice_deliveries')
    .selectAll()
    .where('account_id', '=', accountId)
    .orderBy('seq', 'desc')
    .limit(o.limit);
  if (o.beforeSeq !== undefined) q = q.where('seq', '<', String(o.beforeSeq));
  return q.execute();
}
