import { readFileSync } from 'node:fs';
import type { z } from 'zod';

/**
 * Reads one JSON file of config/ against its schema: keys starting with "$" are comments (at any depth), every other
 * unknown key is refused by the schema. Each problem names the file and the field. With `absent`, a missing file is
 * that value instead of a problem.
 */
export function readConfigFile<T>(
  file: string,
  schema: z.ZodType<T, unknown>,
  o: { absent?: T } = {},
): { data?: T; problems: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    if (o.absent !== undefined && (err as NodeJS.ErrnoException).code === 'ENOENT')
      return { data: o.absent, problems: [] };
    return { problems: [`${file}: ${(err as Error).message}`] };
  }
  const parsed = schema.safeParse(withoutComments(raw));
  if (!parsed.success)
    return { problems: parsed.error.issues.map((i) => `${file}: ${i.path.join('.') || '(root)'}: ${i.message}`) };
  return { data: parsed.data, problems: [] };
}

function withoutComments(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutComments);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !k.startsWith('$'))
        .map(([k, v]) => [k, withoutComments(v)]),
    );
  }
  return value;
}
