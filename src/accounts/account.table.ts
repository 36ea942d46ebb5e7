import type { ColumnType, Selectable } from 'kysely';
import type { AccountStatus } from '../platform/vocabulary';

export interface AccountTable {
  account_id: string;
  status: AccountStatus;
  service_state: string | null;
  billing_state: string | null;
  created_at: ColumnType<Date, Date | undefined, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
  /** Since when the account is closed (null while it is not). */
  closed_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export type AccountRow = Selectable<AccountTable>;
