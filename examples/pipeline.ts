/**
 * An example pipeline (docs/client.md): reads NDJSON records, filters them through optgate, writes what may be used.
 *
 *   OPTGATE_URL=https://optgate.internal OPTGATE_TOKEN=… OPTGATE_PURPOSE=ad_targeting OPTGATE_SCHEMA=clickstream \
 *     node dist/examples/pipeline.js clicks.ndjson allowed.ndjson      (or - for stdin / stdout)
 *
 * test/client/example-pipeline.test.ts runs runPipeline end to end against a real service.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createClient, type FilterCounts, type FilterOptions, type TokenSource } from 'optgate/client';

export interface PipelineOptions {
  readonly baseUrl: string;
  readonly getToken: TokenSource;
  /** An NDJSON file, or `-` for stdin. */
  readonly input: string;
  /**
   * A file, or `-` for stdout. A file is written as `<output>.partial` and renamed only once the whole answer has
   * come: a cut answer leaves no output file that could be taken for a complete one.
   */
  readonly output: string;
  readonly filter: FilterOptions;
}

export async function runPipeline(o: PipelineOptions): Promise<FilterCounts> {
  const client = createClient({ baseUrl: o.baseUrl, getToken: o.getToken });
  const input = o.input === '-' ? process.stdin : createReadStream(o.input);
  const partial = `${o.output}.partial`;
  const out: Writable = o.output === '-' ? process.stdout : createWriteStream(partial);
  const allowed = client.filter(input, o.filter);
  try {
    for await (const record of allowed) {
      if (!out.write(`${record}\n`)) await once(out, 'drain');
    }
  } catch (err) {
    if (out !== process.stdout) {
      out.destroy();
      await rm(partial, { force: true });
    }
    throw err;
  }
  if (out !== process.stdout) {
    out.end();
    await finished(out);
    await rename(partial, o.output);
  }
  return allowed.counts!;
}

if (require.main === module) {
  const [input = '-', output = '-'] = process.argv.slice(2);
  const env = (name: string) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
  };
  runPipeline({
    baseUrl: env('OPTGATE_URL'),
    // A real pipeline asks its identity provider here, for a fresh token when forceRefresh is set.
    getToken: async () => env('OPTGATE_TOKEN'),
    input,
    output,
    filter: { purpose: env('OPTGATE_PURPOSE'), schema: process.env.OPTGATE_SCHEMA },
  }).then(
    (counts) => console.error(JSON.stringify(counts)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
