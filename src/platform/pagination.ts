import { AppError } from './errors';

export interface Page<T> {
  readonly items: T[];
  /** The last item, when another page follows: where the next page starts. */
  readonly next: T | undefined;
}

/** Keyset pagination: asks `fetch` for one row more than `limit`, to know whether another page follows. */
export async function keysetPage<T>(limit: number, fetch: (rows: number) => Promise<T[]>): Promise<Page<T>> {
  const items = await fetch(limit + 1);
  const more = items.length > limit;
  if (more) items.length = limit;
  return { items, next: more ? items[items.length - 1] : undefined };
}

/** Cursors are opaque to callers: a sequence number, base64url-encoded. */
export const encodeCursor = (seq: number | bigint | string) => Buffer.from(`seq:${seq}`).toString('base64url');

export function decodeCursor(cursor: string, field = 'cursor'): number {
  const m = /^seq:(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) {
    throw new AppError('validation', 'The cursor is not one this service issued.', [
      { path: field, message: 'invalid cursor' },
    ]);
  }
  return Number(m[1]);
}
