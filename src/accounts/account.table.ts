import type { ColumnType, Selectable } from 'kysely';
import type { AccountStatus } from '../platform/vocabulary';

export interface AccountTable {
  account_id: string;
  status: AccountStatus;
  service_state: string | null;
  billing_state: string | null;
  created_at: ColumnType<Date, Date | undefined, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export type AccountRow = Selectable<AccountTable>;
