import { appendInTransaction } from '../audit/audit.writer';
import { AppError } from '../platform/errors';

export { ACCOUNT_ID, accountIdSchema } from './account-id';

import type { Db } from '../platform/db/database';
import type { AccountInput } from './account.repository';
import * as repo from './account.repository';

export type { AccountInput } from './account.repository';

export const MAX_ACCOUNTS_PER_CALL = 10_000;

export interface AccountUpsertResult {
  /** Accounts in the request (after removing repeats). */
  readonly upserted: number;
  /** Of those, how many were new or actually changed. */
  readonly changed: number;
}

/** An account import is a staff action: its audit record commits with it. */
export async function upsertAccounts(
  db: Db,
  actor: string,
  accounts: readonly AccountInput[],
  now: Date,
): Promise<AccountUpsertResult> {
  if (accounts.length > MAX_ACCOUNTS_PER_CALL) {
    throw new AppError('payload-too-large', `At most ${MAX_ACCOUNTS_PER_CALL} accounts per call.`);
  }
  // The last entry for an account wins, as if the entries were applied in order.
  const unique = [...new Map(accounts.map((a) => [a.accountId, a] as const)).values()];
  const closed = unique.filter((a) => a.status === 'closed').length;
  const changed = await db.transaction().execute(async (trx) => {
    const n = await repo.upsertAccounts(trx, unique);
    const data = { action: 'accounts_upserted', actor, upserted: unique.length, changed: n, closed };
    await appendInTransaction(trx, [{ type: 'staff_action', accountId: null, outcome: null, data }], now);
    return n;
  });
  return { upserted: unique.length, changed };
}

export async function requireAccount(db: Db, accountId: string) {
  const account = await repo.findAccount(db, accountId);
  if (!account) throw new AppError('not-found', 'No such account.');
  return account;
}

/**
 * For another component that records something about an account: the account must exist; it stays locked until `db`'s
 * transaction ends.
 */
export async function requireAccountForUpdate(db: Db, accountId: string) {
  const account = await repo.lockAccount(db, accountId);
  if (!account) throw new AppError('not-found', 'No such account.');
  return account;
}
