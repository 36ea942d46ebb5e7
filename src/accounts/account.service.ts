import { appendWithin, staffActionRecord } from '../audit';
import { type CacheCoherence, recordChanges } from '../cache';
import type { Db } from '../platform/db/database';
import { AppError } from '../platform/errors';
import type { AccountInput } from './account.repository';
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
}

export class AccountService {
  constructor(private readonly deps: AccountDeps) {}

  /** An account import is a staff action: its audit record commits with it. */
  async upsert(actor: string, accounts: readonly AccountInput[]): Promise<AccountUpsertResult> {
    if (accounts.length > MAX_ACCOUNTS_PER_CALL) {
      throw new AppError('payload-too-large', `At most ${MAX_ACCOUNTS_PER_CALL} accounts per call.`);
    }
    // The last entry for an account wins, as if the entries were applied in order.
    const unique = [...new Map(accounts.map((a) => [a.accountId, a] as const)).values()];
    const closed = unique.filter((a) => a.status === 'closed').length;
    const change = await this.deps.db.transaction().execute(async (trx) => {
      const ids = await repo.upsertRows(trx, unique);
      const recorded = await recordChanges(trx, ids);
      const action = {
        action: 'accounts_upserted',
        actor,
        upserted: unique.length,
        changed: ids.length,
        closed,
      } as const;
      await appendWithin(trx, [staffActionRecord(action)], this.deps.clock());
      return recorded;
    });
    const changed = change.accounts === 'all' ? unique.length : change.accounts.length;
    if (changed) await this.deps.coherence.announce(change);
    return { upserted: unique.length, changed };
  }

  /** The account, or 404. */
  async require(accountId: string) {
    const account = await repo.findAccount(this.deps.db, accountId);
    if (!account) throw new AppError('not-found', 'No such account.');
    return account;
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
