import autocannon from 'autocannon';
import { type CpuSnapshot, cpuBetween } from './processes';

/**
 * One load phase: autocannon, in this process, against one endpoint, with a warm-up that is run
 * the same way and not measured. Bodies that vary per request come from `next()`, through
 * autocannon's `requests[].setupRequest`; each answer is checked by the `verify` that came with its
 * request (autocannon calls onResponse before it sends the connection's next request, so with
 * pipelining 1 the context of a connection belongs to the request being answered).
 */

export type Tally = Record<string, number>;

export interface NextRequest {
  readonly body: string | Buffer;
  /**
   * Checks a 2xx answer. Adds what it saw to `tally` (e.g. allow/deny counts); returns a
   * description of what is wrong, or undefined when the answer is right.
   */
  readonly verify?: (body: string, tally: Tally) => string | undefined;
}

export interface LoadSpec {
  readonly name: string;
  /** One service, or several (autocannon spreads the connections over them in turn, like a round-robin balancer). */
  readonly url: string | readonly string[];
  readonly path: string;
  readonly method: 'GET' | 'POST';
  readonly headers?: Record<string, string>;
  readonly connections: number;
  /** Seconds measured. */
  readonly duration: number;
  /** Seconds of unmeasured load first (0: none). */
  readonly warmup: number;
  /** Seconds before a request counts as timed out (autocannon's default is 10). */
  readonly timeout?: number;
  /** Builds each request; without it every request is the same (no body). */
  readonly next?: () => NextRequest;
  /** For a constant answer: every 2xx body must be exactly this. */
  readonly expectBody?: string;
  /**
   * Processes whose CPU use is reported for the measured phase. They are also waited for after
   * the warm-up and after the measured phase: requests that autocannon abandoned when it stopped
   * are still being worked on, and must not be counted in (or slow down) the next measurement.
   */
  readonly watch?: readonly Watched[];
}

export interface Watched {
  readonly label: string;
  readonly cpu: () => CpuSnapshot | undefined;
}

export interface RunStats {
  /** Responses received (any status). */
  readonly responses: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly statusCounts: Readonly<Record<string, number>>;
  /** Connection errors (autocannon counts timeouts among them). */
  readonly errors: number;
  readonly timeouts: number;
  /** 2xx answers that `verify` found wrong. */
  readonly mismatches: number;
  readonly mismatchSamples: readonly string[];
  readonly tally: Tally;
}

export interface LoadResult extends RunStats {
  readonly name: string;
  readonly connections: number;
  /** Seconds actually measured. */
  readonly seconds: number;
  /** 2xx responses per second. */
  readonly okPerSecond: number;
  readonly latencyMs: {
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
    readonly mean: number;
  };
  /** Percent of one core used by each watched process during the measured phase. */
  readonly cpuPercent: Readonly<Record<string, number | undefined>>;
  readonly warmupStats?: RunStats;
}

let current: autocannon.Instance | undefined;

/** Stops the load generator if it is running (SIGINT). */
export function stopLoad(): void {
  current?.stop();
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const watch = spec.watch ?? [];
  let warmupStats: RunStats | undefined;
  if (spec.warmup > 0) {
    warmupStats = (await cannon(spec, spec.warmup)).stats;
    await settle(watch);
  }

  const before = watch.map((w) => w.cpu());
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  const { result, stats } = await cannon(spec, spec.duration);
  const wall = (performance.now() - wallStart) / 1000;
  const own = process.cpuUsage(cpuStart);
  const cpuPercent: Record<string, number | undefined> = {
    'load generator': ((own.user + own.system) / 1e6 / wall) * 100,
  };
  watch.forEach((w, i) => {
    const used = cpuBetween(before[i], w.cpu());
    cpuPercent[w.label] = used === undefined ? undefined : (used / wall) * 100;
  });
  await settle(watch);

  const seconds = result.duration || spec.duration;
  return {
    name: spec.name,
    connections: spec.connections,
    seconds,
    ...stats,
    okPerSecond: stats.ok / seconds,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
      mean: result.latency.average,
    },
    cpuPercent,
    warmupStats,
  };
}

/**
 * Waits (at most `limitMs`) until the watched processes together use less than a tenth of a core for two samples in a
 * row.
 */
export async function settle(watch: readonly Watched[], limitMs = 60_000): Promise<void> {
  if (!watch.length) return;
  const sampleMs = 250;
  const snapshot = () => watch.map((w) => w.cpu());
  const deadline = Date.now() + limitMs;
  let previous = snapshot();
  let quiet = 0;
  while (quiet < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, sampleMs));
    const current = snapshot();
    let used = 0;
    current.forEach((c, i) => {
      used += cpuBetween(previous[i], c) ?? 0;
    });
    previous = current;
    quiet = used / (sampleMs / 1000) < 0.1 ? quiet + 1 : 0;
  }
}

async function cannon(spec: LoadSpec, duration: number): Promise<{ result: autocannon.Result; stats: RunStats }> {
  const tally: Tally = {};
  const mismatchSamples: string[] = [];
  let mismatches = 0;
  type Context = { verify?: NextRequest['verify'] };

  const request: autocannon.Request = { method: spec.method, path: spec.path };
  if (spec.next) {
    const next = spec.next;
    request.setupRequest = (req, context) => {
      const r = next();
      (context as Context).verify = r.verify;
      return { ...req, body: r.body };
    };
    request.onResponse = (status, body, context) => {
      const verify = (context as Context).verify;
      (context as Context).verify = undefined;
      if (status < 200 || status >= 300 || !verify) return;
      const wrong = verify(body, tally);
      if (wrong !== undefined) {
        mismatches++;
        if (mismatchSamples.length < 5) mismatchSamples.push(wrong);
      }
    };
  }

  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        // autocannon 9 takes an array of URLs (lib/run.js), though its types say string.
        url: (typeof spec.url === 'string' ? spec.url + spec.path : spec.url.map((u) => u + spec.path)) as string,
        method: spec.method,
        connections: spec.connections,
        duration,
        timeout: spec.timeout ?? 10,
        pipelining: 1,
        headers: spec.headers ?? {},
        // autocannon refuses expectBody together with requests: a constant request needs neither.
        ...(spec.next ? { requests: [request] } : {}),
        ...(spec.expectBody === undefined ? {} : { expectBody: spec.expectBody }),
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    current = instance;
  }).finally(() => {
    current = undefined;
  });

  const statusCounts: Record<string, number> = {};
  for (const [code, s] of Object.entries(result.statusCodeStats ?? {})) statusCounts[code] = s.count ?? 0;
  return {
    result,
    stats: {
      responses: result.requests.total,
      ok: result['2xx'],
      non2xx: result.non2xx,
      statusCounts,
      errors: result.errors,
      timeouts: result.timeouts,
      // autocannon counts the bodies that differ from expectBody.
      mismatches: mismatches + (result.mismatches ?? 0),
      mismatchSamples: result.mismatches
        ? [...mismatchSamples, `${result.mismatches} bodies differ from ${spec.expectBody}`]
        : mismatchSamples,
      tally,
    },
  };
}

/** Whether a run saw anything other than right 2xx answers. */
export function failures(stats: RunStats): string[] {
  const out: string[] = [];
  if (stats.non2xx) {
    const codes = Object.entries(stats.statusCounts)
      .filter(([c]) => !c.startsWith('2'))
      .map(([c, n]) => `${n}× ${c}`)
      .join(', ');
    out.push(`${stats.non2xx} non-2xx responses (${codes})`);
  }
  if (stats.errors) out.push(`${stats.errors} connection errors (of which ${stats.timeouts} timeouts)`);
  else if (stats.timeouts) out.push(`${stats.timeouts} timeouts`);
  if (stats.mismatches) out.push(`${stats.mismatches} wrong answers, e.g. ${stats.mismatchSamples.join(' | ')}`);
  if (stats.ok === 0) out.push('no successful response at all');
  return out;
}
