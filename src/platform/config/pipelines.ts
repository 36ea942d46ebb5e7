import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { withoutComments } from './catalog';

/**
 * What subscribers call the ISP's systems (config/pipelines.json): a display name per client id (a token's `sub`),
 * shown on the portal's activity page instead of the id. Optional: without the file, no system has a name, and the
 * page says "one of our systems". Validated at start-up like the brand: a mistake stops the start, naming file and
 * field.
 */

const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, 'must hold no control characters')
    .refine((s) => s.trim() === s, 'must not start or end with a space');

const pipelinesFileSchema = z.strictObject({
  pipelines: z.array(
    z.strictObject({
      clientId: text(128),
      displayName: text(80),
    }),
  ),
});

/** Client id → display name. */
export type PipelineNames = ReadonlyMap<string, string>;

/** Reads and checks config/pipelines.json (absent: no names); returns its problems, each naming file and field. */
export function loadPipelines(configDir: string): { pipelines?: PipelineNames; problems: string[] } {
  const file = path.join(configDir, 'pipelines.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { pipelines: new Map(), problems: [] };
    return { problems: [`${file}: ${(err as Error).message}`] };
  }
  const parsed = pipelinesFileSchema.safeParse(withoutComments(raw));
  if (!parsed.success) {
    return { problems: parsed.error.issues.map((i) => `${file}: ${i.path.join('.') || '(root)'}: ${i.message}`) };
  }
  const names = new Map<string, string>();
  const problems: string[] = [];
  parsed.data.pipelines.forEach(({ clientId, displayName }, i) => {
    if (names.has(clientId)) problems.push(`${file}: pipelines.${i}.clientId: "${clientId}" is named twice`);
    names.set(clientId, displayName);
  });
  return problems.length ? { problems } : { pipelines: names, problems };
}
