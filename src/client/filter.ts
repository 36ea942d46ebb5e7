import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { OptgateProblemError, OptgateStreamCutError, problemOf } from './errors';
import type { Transport } from './http';
import type { FilterCounts, FilterOptions } from './types';

/**
 * What the filter reads: raw NDJSON bytes (a file or stdin stream, passed on as they are), or records one by one (a
 * string is one record's line, an object is serialised as one).
 */
export type FilterInput =
  | AsyncIterable<Uint8Array | string | Record<string, unknown>>
  | Iterable<Uint8Array | string | Record<string, unknown>>;

const TRAILERS = ['x-optgate-received', 'x-optgate-allowed', 'x-optgate-invalid', 'x-optgate-redacted'] as const;

/**
 * One POST /v1/filter: the records the service passes on, as lines (without their newline), in input order, while
 * the input is still being sent. Iterate it once; `counts` is set when the iteration has ended complete.
 *
 * Not retried: its input is a stream the client cannot replay. A cut answer (no terminating chunk or no trailers)
 * throws OptgateStreamCutError after the lines that came: what was written from them is not the whole answer.
 */
export class FilterStream implements AsyncIterable<string> {
  /** The service's counts, once the whole answer has been read. */
  counts?: FilterCounts;
  private used = false;

  constructor(
    private readonly t: Transport,
    private readonly input: FilterInput,
    private readonly options: FilterOptions,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    if (this.used) throw new TypeError('A FilterStream can be iterated once');
    this.used = true;
    const token = await this.t.getToken({ forceRefresh: false });
    const url = new URL(`${this.t.baseUrl}/v1/filter?${filterQuery(this.options)}`);
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/x-ndjson',
        accept: 'application/x-ndjson',
      },
    });
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
    // Sending runs beside reading: the service answers while it reads, and stops reading while its answer waits.
    // A failure of the input is the pipeline's own error: it is thrown as it is, not as a cut answer.
    let inputFailed: { error: unknown } | undefined;
    const sending = send(this.input, req);
    sending.catch((error: unknown) => {
      inputFailed = { error };
      req.destroy();
    });
    try {
      const res = await answered.catch((err: unknown) => {
        throw inputFailed ? inputFailed.error : err;
      });
      if (res.statusCode !== 200) {
        const text = await readAll(res);
        throw new OptgateProblemError(
          problemOf(res.statusCode ?? 0, res.statusMessage ?? '', res.headers['content-type'] ?? '', text),
        );
      }
      const decoder = new StringDecoder('utf8');
      let rest = '';
      try {
        for await (const chunk of res) {
          const lines = (rest + decoder.write(chunk as Buffer)).split('\n');
          rest = lines.pop()!;
          yield* lines;
        }
      } catch (err) {
        if (inputFailed) throw inputFailed.error;
        throw new OptgateStreamCutError('The filter answer was cut before its end: it is not the whole answer', {
          cause: err,
        });
      }
      rest += decoder.end();
      const counts = TRAILERS.map((name) => res.trailers[name]);
      if (!res.complete || rest || counts.some((c) => c === undefined || !/^\d+$/.test(c))) {
        throw new OptgateStreamCutError('The filter answer ended without its counts: it is not the whole answer');
      }
      await sending;
      const [received, allowed, invalid, redacted] = counts.map(Number) as [number, number, number, number];
      this.counts = { received, allowed, invalid, redacted };
    } finally {
      // Stopped early (a break, an error): nothing more is sent or read.
      if (!this.counts) req.destroy();
    }
  }
}

function filterQuery(o: FilterOptions): string {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(o)) {
    if (value === undefined) continue;
    q.set(name, Array.isArray(value) ? value.join(',') : String(value));
  }
  return q.toString();
}

async function send(input: FilterInput, req: http.ClientRequest): Promise<void> {
  // Resolved on close as well: a request destroyed while waiting never drains.
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        req.off('drain', done);
        req.off('close', done);
        resolve();
      };
      req.on('drain', done);
      req.on('close', done);
    });
  const write = (data: string | Uint8Array) => (req.write(data) ? undefined : drained());
  for await (const item of input) {
    if (req.destroyed) return;
    const pending =
      item instanceof Uint8Array
        ? write(item)
        : typeof item === 'string'
          ? write(item.endsWith('\n') ? item : `${item}\n`)
          : write(`${JSON.stringify(item)}\n`);
    if (pending) await pending;
  }
  await new Promise<void>((resolve) => req.end(resolve));
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res) chunks.push(chunk as Buffer);
  } catch {
    // A problem whose body was cut is still a problem: described by its status.
  }
  return Buffer.concat(chunks).toString('utf8');
}
