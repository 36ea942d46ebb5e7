import path from 'node:path';
import { z } from 'zod';
import { readConfigFile } from './config-file';

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
  const read = readConfigFile(file, pipelinesFileSchema, { absent: { pipelines: [] } });
  if (!read.data) return { problems: read.problems };
  const names = new Map<string, string>();
  const problems: string[] = [];
  read.data.pipelines.forEach(({ clientId, displayName }, i) => {
    if (names.has(clientId)) problems.push(`${file}: pipelines.${i}.clientId: "${clientId}" is named twice`);
    names.set(clientId, displayName);
  });
  return problems.length ? { problems } : { pipelines: names, problems };
}
