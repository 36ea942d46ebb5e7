import { z } from 'zod';

/** An account id: 1–64 letters, digits, ".", "_" or "-". */
export const ACCOUNT_ID = /^[A-Za-z0-9._-]{1,64}$/;

export const accountIdSchema = z.string().regex(ACCOUNT_ID, 'must be 1–64 letters, digits, ".", "_" or "-"');
