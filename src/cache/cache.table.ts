import type { ColumnType } from 'kysely';

export interface AccountChangeTable {
  /** The writing transaction (xid8, as text). */
  xid: ColumnType<string, never, never>;
  /** null: every account. */
  account_id: string | null;
  changed_at: ColumnType<Date, never, never>;
}
