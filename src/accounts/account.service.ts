import { appendWithin, staffActionRecord } from '../audit';
import { type CacheCoherence, recordChanges } from '../cache';
import type { Db } from '../platform/db/database';
import { AppError } from '../platform/errors';
import type { AccountChange, AccountInput } from './account.repository';
import * as repo from './account.repository';

export const MAX_ACCOUNTS_PER_CALL = 10_000;

export interface AccountUpsertResult {
  /** Accounts in the request (after removing repeats). */
  readonly upserted: number;
  /** Of those, how many were new or actually changed. */
  readonly changed: number;
}

export interface AccountDeps {
  readonly db: Db;
  readonly clock: () => Date;
  /** Every instance's cache drops the accounts an import changed, before the import is answered. */
  readonly coherence: Pick<CacheCoherence, 'announce'>;
  /**
   * In the transaction that closes accounts: ends their opt-ins (the consent component's `lapseOnClosure`, injected by
   * the composition root, since consent depends on accounts). Returns how many ended, per account.
   */
  readonly lapseOnClosure: (trx: Db, accountIds: readonly string[], now: Date) => Promise<ReadonlyMap<string, number>>;
}

/** What a status change is, for its audit record. */
const changeKind = (c: AccountChange) =>
  c.before === null
    ? 'opened'
    : c.before.status === c.status
      ? 'updated'
      : c.status === 'closed'
        ? 'closed'
        : 'reopened';

/** A change of plan or price, as the non-discrimination review lists it. */
export interface PlanChange {
  readonly changeId: string;
  readonly accountId: string;
  readonly changedAt: Date;
  readonly plan: string | null;
  readonly monthlyPrice: string | null;
  readonly previousPlan: string | null;
  readonly previousMonthlyPrice: string | null;
}

export class AccountService {
  constructor(private readonly deps: AccountDeps) {}

  /**
   * An account import is a staff action. Each account it creates or changes gets its own audit record (opened, closed,
   * re-opened, or its service or billing state updated), committed with it; closing an account ends its opt-ins.
   */
  async upsert(actor: string, accounts: readonly AccountInput[]): Promise<AccountUpsertResult> {
    if (accounts.length > MAX_ACCOUNTS_PER_CALL) {
      throw new AppError('payload-too-large', `At most ${MAX_ACCOUNTS_PER_CALL} accounts per call.`);
    }
    // The last entry for an account wins, as if the entries were applied in order.
    const unique = [...new Map(accounts.map((a) => [a.accountId, a] as const)).values()];
    const { change, changed } = await this.deps.db.transaction().execute(async (trx) => {
      const now = this.deps.clock();
      const rows = await repo.upsertRows(trx, unique, now);
      const closing = rows.filter((r) => changeKind(r) === 'closed').map((r) => r.accountId);
      const lapsed = await this.deps.lapseOnClosure(trx, closing, now);
      const recorded = await recordChanges(
        trx,
        rows.map((r) => r.accountId),
      );
      const records = rows.map((r) =>
        staffActionRecord(
          {
            action: 'account_changed',
            actor,
            change: changeKind(r),
            status: r.status,
            serviceState: r.serviceState,
            billingState: r.billingState,
            ...(r.plan !== null ? { plan: r.plan } : {}),
            ...(r.monthlyPrice !== null ? { monthlyPrice: r.monthlyPrice } : {}),
            ...(lapsed.get(r.accountId) ? { lapsedConsents: lapsed.get(r.accountId) } : {}),
          },
          r.accountId,
        ),
      );
      await appendWithin(trx, records, now);
      return { change: recorded, changed: rows.length };
    });
    if (changed) await this.deps.coherence.announce(change);
    return { upserted: unique.length, changed };
  }

  /** Changes of plan or price in [from, to), in the order recorded; `after`: the `changeId` a last page ended on. */
  async planChanges(o: { from: Date; to: Date; after?: string; limit: number }): Promise<PlanChange[]> {
    const afterId = o.after && /^\d{1,19}$/.test(o.after) ? o.after : undefined;
    const rows = await repo.findPlanChanges(this.deps.db, { from: o.from, to: o.to, afterId, limit: o.limit });
    return rows.map((r) => ({
      changeId: r.id,
      accountId: r.account_id,
      changedAt: r.changed_at,
      plan: r.plan,
      monthlyPrice: r.monthly_price,
      previousPlan: r.previous_plan,
      previousMonthlyPrice: r.previous_monthly_price,
    }));
  }

  /** The account, or 404. */
  async require(accountId: string) {
    const account = await repo.findAccount(this.deps.db, accountId);
    if (!account) throw new AppError('not-found', 'No such account.');
    return account;
  }

  /**
   * In the caller's transaction: records that the subscriber's browser sends Global Privacy Control, the first time it
   * is seen. False when it was recorded before (the standing opt-out was honoured then).
   */
  claimGpc(trx: Db, accountId: string, now: Date): Promise<boolean> {
    return repo.claimGpc(trx, accountId, now);
  }

  /**
   * For another component that records something about an account inside its transaction `trx`:
   * the account must exist, and stays locked against status changes until `trx` ends.
   */
  async requireForUpdate(trx: Db, accountId: string) {
    const account = await repo.lockAccount(trx, accountId);
    if (!account) throw new AppError('not-found', 'No such account.');
    return account;
  }
}
