import type { z } from 'zod';
import { validationError } from '../errors';

/** Parses `value` with `schema`, or throws a 422 problem listing every failing field. Messages never echo input. */
export function parse<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw validationError(
    result.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(body)', message: i.message })),
  );
}
