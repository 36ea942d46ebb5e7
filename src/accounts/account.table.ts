import type { ColumnType, Generated, Selectable } from 'kysely';
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
  /** Since when the subscriber's browser sends Global Privacy Control: a standing opt-out, honoured once. */
  gpc_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  plan: string | null;
  /** numeric(12, 2): read as a string by pg. */
  monthly_price: string | null;
}

/** Every change of an account's plan or monthly price (append-only), for non-discrimination reviews. */
export interface AccountPlanChangeTable {
  /** bigint: a string. */
  id: Generated<string>;
  account_id: string;
  changed_at: Date;
  plan: string | null;
  monthly_price: string | null;
  previous_plan: string | null;
  previous_monthly_price: string | null;
}

export type AccountRow = Selectable<AccountTable>;
