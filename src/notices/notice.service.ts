import { randomUUID } from 'node:crypto';
import type { AccountService } from '../accounts';
import { appendWithin, staffActionRecord } from '../audit';
import type { Catalog } from '../platform/config/catalog';
import type { Db } from '../platform/db/database';
import { type FieldProblem, validationError } from '../platform/errors';
import { encodeCursor, keysetPage } from '../platform/pagination';
import type { NoticeDeliveryChannel } from '../platform/vocabulary';
import * as repo from './notice.repository';
import type { NoticeDeliveryRow } from './notice.table';

/** Channels where a person gives the notice: the record names them. */
const STAFFED: ReadonlySet<NoticeDeliveryChannel> = new Set(['point_of_sale', 'call_center']);

export interface NoticeDelivery {
  readonly noticeVersion: string;
  readonly channel: NoticeDeliveryChannel;
  /** Who gave it: required for point_of_sale and call_center. */
  readonly staffId?: string;
  /** When it was given; absent: now. */
  readonly deliveredAt?: Date;
}

export interface DeliveryView {
  readonly deliveryId: string;
  readonly accountId: string;
  readonly noticeVersion: string;
  readonly noticeSha256: string;
  readonly channel: NoticeDeliveryChannel;
  readonly staffId?: string;
  /** The client that recorded it (the token's `sub`). */
  readonly clientId: string;
  readonly deliveredAt: Date;
  readonly recordedAt: Date;
}

export interface NoticeDeps {
  readonly db: Db;
  readonly catalog: Catalog;
  readonly clock: () => Date;
  readonly accounts: Pick<AccountService, 'require' | 'requireForUpdate'>;
}

const view = (r: NoticeDeliveryRow): DeliveryView => ({
  deliveryId: r.delivery_id,
  accountId: r.account_id,
  noticeVersion: r.notice_version,
  noticeSha256: r.notice_sha256,
  channel: r.channel,
  ...(r.staff_id !== null ? { staffId: r.staff_id } : {}),
  clientId: r.client_id,
  deliveredAt: r.delivered_at,
  recordedAt: r.recorded_at,
});

/**
 * Notice deliveries: the proof that a channel gave the subscriber a notice version (the text whose SHA-256 the record
 * holds) before it asked for anything. Each is appended with its audit record, in one transaction.
 */
export class NoticeService {
  constructor(private readonly deps: NoticeDeps) {}

  async recordDelivery(
    accountId: string,
    delivery: NoticeDelivery,
    provenance: { readonly clientId: string; readonly requestId: string },
  ): Promise<DeliveryView> {
    const now = this.deps.clock();
    const notice = this.validate(delivery, now);
    const deliveredAt = delivery.deliveredAt ?? now;
    return this.deps.db.transaction().execute(async (trx) => {
      await this.deps.accounts.requireForUpdate(trx, accountId);
      const row = await repo.insertDelivery(trx, {
        delivery_id: randomUUID(),
        account_id: accountId,
        notice_version: notice.version,
        notice_sha256: notice.sha256,
        channel: delivery.channel,
        staff_id: delivery.staffId ?? null,
        client_id: provenance.clientId,
        delivered_at: deliveredAt,
        recorded_at: now,
        request_id: provenance.requestId,
      });
      const record = {
        action: 'notice_delivered' as const,
        actor: provenance.clientId,
        deliveryId: row.delivery_id,
        noticeVersion: notice.version,
        noticeSha256: notice.sha256,
        channel: delivery.channel,
        ...(delivery.staffId !== undefined ? { staffId: delivery.staffId } : {}),
        deliveredAt: deliveredAt.toISOString(),
        requestId: provenance.requestId,
      };
      await appendWithin(trx, [staffActionRecord(record, accountId)], now);
      return view(row);
    });
  }

  /** One account's deliveries, newest first (404 for an unknown account). */
  async deliveries(accountId: string, o: { beforeSeq?: number; limit: number }) {
    await this.deps.accounts.require(accountId);
    const page = await keysetPage(o.limit, (limit) =>
      repo.findAccountDeliveries(this.deps.db, accountId, { ...o, limit }),
    );
    return { accountId, deliveries: page.items.map(view), nextCursor: page.next ? encodeCursor(page.next.seq) : null };
  }

  /** Every check against the catalog and the clock, reported together; returns the notice. */
  private validate(d: NoticeDelivery, now: Date) {
    const problems: FieldProblem[] = [];
    const notice = this.deps.catalog.noticesByVersion.get(d.noticeVersion);
    if (!notice) problems.push({ path: 'noticeVersion', message: 'unknown notice version' });
    else if (notice.effectiveAt > now)
      problems.push({ path: 'noticeVersion', message: 'this notice version is not in effect yet' });
    if (STAFFED.has(d.channel) && d.staffId === undefined)
      problems.push({ path: 'staffId', message: `required for ${d.channel}: who gave the notice` });
    if (d.deliveredAt && d.deliveredAt > now)
      problems.push({ path: 'deliveredAt', message: 'must not be in the future' });
    else if (d.deliveredAt && notice && notice.effectiveAt <= now && d.deliveredAt < notice.effectiveAt) {
      problems.push({
        path: 'deliveredAt',
        message: `must not be before ${notice.version} took effect (${notice.effectiveAt.toISOString()})`,
      });
    }
    if (problems.length || !notice) throw validationError(problems);
    return notice;
  }
}
