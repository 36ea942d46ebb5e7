import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
import { OptgateError, OptgateProblemError, OptgateProtocolError, OptgateUnavailableError, problemOf } from './errors';

/**
 * Gives the client a bearer token. `forceRefresh` is true after the service answered 401 to the last one: return a
 * fresh token, not a cached one (the client asks once, and retries once).
 */
export type TokenSource = (hint: { forceRefresh: boolean }) => Promise<string>;

export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  readonly attempts?: number;
  /** The backoff before the second attempt is up to this, doubling each time (default 100 ms). */
  readonly baseDelayMs?: number;
  /** No single wait is longer (default 5 s), whatever Retry-After says. */
  readonly maxDelayMs?: number;
  /** No retry starts after this long since the first attempt (default 30 s). */
  readonly maxElapsedMs?: number;
}

export interface Transport {
  readonly baseUrl: string;
  readonly getToken: TokenSource;
  readonly fetch: typeof fetch;
  /** Each attempt's time limit. */
  readonly timeoutMs: number;
  readonly retry: Required<RetryOptions>;
}

export const DEFAULT_RETRY: Required<RetryOptions> = {
  attempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 5000,
  maxElapsedMs: 30_000,
};

/** 502, 503 and 504 are a service (or its proxy) not answering now; anything else would answer the same again. */
const RETRYABLE = new Set([502, 503, 504]);

/**
 * One JSON call, retried on 502/503/504 and connection failures (refused, reset, timed out) with exponential backoff
 * and full jitter, honouring Retry-After, within the retry options' bounds. A 401 asks the token source for a fresh
 * token once. Every other status is an OptgateProblemError; an answer that does not match `schema` is an
 * OptgateProtocolError. Nothing here ever turns a failure into an answer.
 */
export async function callJson<S extends z.ZodType>(
  t: Transport,
  method: 'GET' | 'POST',
  path: string,
  schema: S,
  body?: unknown,
): Promise<z.output<S>> {
  const started = Date.now();
  let token = await t.getToken({ forceRefresh: false });
  let refreshed = false;
  for (let attempt = 1; ; attempt++) {
    let failure: unknown;
    let retryAfterMs = 0;
    try {
      const res = await t.fetch(t.baseUrl + path, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(t.timeoutMs),
      });
      const text = await res.text();
      if (res.ok) return parseAnswer(schema, text, path);
      const error = new OptgateProblemError(
        problemOf(res.status, res.statusText, res.headers.get('content-type') ?? '', text),
      );
      if (res.status === 401 && !refreshed) {
        refreshed = true;
        token = await t.getToken({ forceRefresh: true });
        attempt--;
        continue;
      }
      if (!RETRYABLE.has(res.status)) throw error;
      failure = error;
      retryAfterMs = retryAfter(res.headers.get('retry-after'));
    } catch (err) {
      if (err instanceof OptgateError) throw err;
      // fetch failed (refused, reset, DNS), the attempt timed out, or the body was cut while it was read.
      failure = err;
    }
    const wait = Math.min(
      t.retry.maxDelayMs,
      Math.max(retryAfterMs, Math.random() * t.retry.baseDelayMs * 2 ** (attempt - 1)),
    );
    if (attempt >= t.retry.attempts || Date.now() + wait - started > t.retry.maxElapsedMs) {
      throw new OptgateUnavailableError(
        `optgate ${method} ${path} failed after ${attempt} attempt(s): ${describe(failure)}`,
        attempt,
        failure,
      );
    }
    await sleep(wait);
  }
}

function parseAnswer<S extends z.ZodType>(schema: S, text: string, path: string): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new OptgateProtocolError(`optgate ${path} answered 2xx with a body that is not JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new OptgateProtocolError(`optgate ${path} answered 2xx with a body that does not match its schema`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}

/** Retry-After in delta-seconds or as an HTTP date; 0 when absent or unreadable. */
export function retryAfter(header: string | null): number {
  if (!header) return 0;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? 0 : Math.max(0, at - Date.now());
}

/** Duck-typed: errors thrown by fetch may come from another realm (a test runner's sandbox). */
function describe(err: unknown): string {
  const { message, cause } = (err ?? {}) as { message?: unknown; cause?: { code?: unknown } };
  if (typeof message !== 'string') return String(err);
  return typeof cause?.code === 'string' ? `${message} (${cause.code})` : message;
}
