import { prng } from '../../src/platform/random';
import type { LoadSpec, NextRequest, Tally } from './load';
import { BENCH_PURPOSE, expectedAllow, type SeedResult } from './seed';

/**
 * What each phase sends and how its answers are checked. A scenario is a LoadSpec minus the
 * settings that the run decides (connections, duration, warm-up): run.ts fills those in, so a new
 * row of the table (a variant of the service, another endpoint) is a new scenario plus one line there.
 */

export type Scenario = Omit<LoadSpec, 'connections' | 'duration' | 'warmup' | 'watch'>;

/** Category sets a targeting pipeline asks about, with their weights: 1 to 3 categories, opt-in and opt-out. */
const CATEGORY_MIX: readonly { readonly categories: readonly string[]; readonly weight: number }[] = [
  { categories: ['web_browsing_history'], weight: 0.45 },
  { categories: ['web_browsing_history', 'other_customer_info'], weight: 0.25 },
  { categories: ['web_browsing_history', 'app_usage_history', 'other_customer_info'], weight: 0.15 },
  { categories: ['app_usage_history'], weight: 0.05 },
  { categories: ['other_customer_info'], weight: 0.1 },
];

export const BATCH_CATEGORIES = ['web_browsing_history', 'other_customer_info'] as const;

const authHeaders = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

interface DecisionBody {
  accountId?: string;
  allow?: boolean;
  validUntil?: string;
  results?: { allow: boolean; reason: string }[];
}

/**
 * POST /v1/decisions: one seeded account per request, purpose ad_targeting, 1–3 categories. The
 * accounts are drawn at random (`random`: with a warm cache, every answer from memory), or walk a
 * random permutation so that each is asked about once (`each once`: every answer a cache miss).
 */
export function singleDecisions(
  url: string | readonly string[],
  token: string,
  data: SeedResult,
  seed: number,
  order: 'random' | 'each once' = 'random',
): Scenario {
  const rand = prng(seed);
  const cumulative: number[] = [];
  let sum = 0;
  for (const m of CATEGORY_MIX) {
    sum += m.weight;
    cumulative.push(sum);
  }
  const fragments = CATEGORY_MIX.map(
    (m) => `","purpose":"${BENCH_PURPOSE}","categories":${JSON.stringify(m.categories)}}`,
  );
  const n = data.accountIds.length;
  const permutation = order === 'each once' ? shuffled(n, rand) : undefined;
  let asked = 0;

  const next = (): NextRequest => {
    // Past the end of the permutation (a run longer than accounts / rate) the walk starts again: warm answers.
    const i = permutation ? permutation[asked++ % n]! : Math.floor(rand() * n);
    const r = rand() * sum;
    let k = 0;
    while (k < cumulative.length - 1 && r >= cumulative[k]!) k++;
    const accountId = data.accountIds[i]!;
    const categories = CATEGORY_MIX[k]!.categories;
    const expected = expectedAllow(data.model[i]!, categories);
    return {
      body: `{"accountId":"${accountId}${fragments[k]}`,
      verify: (text: string, tally: Tally) => {
        let d: DecisionBody;
        try {
          d = JSON.parse(text) as DecisionBody;
        } catch {
          return `unparseable answer for ${accountId}`;
        }
        if (d.accountId !== accountId) return `answer for ${String(d.accountId)} to a question about ${accountId}`;
        if (d.allow !== expected)
          return `${accountId} ${categories.join('+')}: allow=${String(d.allow)}, expected ${expected}`;
        if (d.allow && !d.validUntil) return `${accountId}: an allow without validUntil`;
        if (d.results?.length !== categories.length)
          return `${accountId}: ${d.results?.length} results for ${categories.length} categories`;
        const decisive = d.allow ? d.results[0]! : d.results.find((x) => !x.allow)!;
        const key = `${d.allow ? 'allow' : 'deny'}:${decisive.reason}`;
        tally[key] = (tally[key] ?? 0) + 1;
        return undefined;
      },
    };
  };
  return {
    name: order === 'random' ? 'single decision' : 'single decision, cold cache',
    url,
    path: '/v1/decisions',
    method: 'POST',
    headers: authHeaders(token),
    next,
  };
}

/** 0..n-1 in a random order (Fisher–Yates). */
function shuffled(n: number, rand: () => number): Uint32Array {
  const out = Uint32Array.from({ length: n }, (_, i) => i);
  for (let j = n - 1; j > 0; j--) {
    const k = Math.floor(rand() * (j + 1));
    const t = out[j]!;
    out[j] = out[k]!;
    out[k] = t;
  }
  return out;
}

/**
 * POST /v1/decisions/batch: `size` distinct random seeded accounts per call. A handful of bodies
 * is built up front (building a 150 kB body per request would load the generator, not the
 * service) and sent in turn; each answer is checked for its length, its order and its count of allows.
 */
export function batchDecisions(
  url: string | readonly string[],
  token: string,
  data: SeedResult,
  seed: number,
  size: number,
  bodies = 16,
): Scenario {
  const rand = prng(seed);
  const n = data.accountIds.length;
  const perCall = Math.min(size, n);
  const indices = Uint32Array.from({ length: n }, (_, i) => i);
  const prepared = Array.from({ length: bodies }, () => {
    // Partial Fisher–Yates: the first perCall slots become a random sample without repeats.
    for (let j = 0; j < perCall; j++) {
      const k = j + Math.floor(rand() * (n - j));
      const t = indices[j]!;
      indices[j] = indices[k]!;
      indices[k] = t;
    }
    const sample = indices.slice(0, perCall);
    const ids = Array.from(sample, (i) => data.accountIds[i]!);
    let allows = 0;
    for (const i of sample) if (expectedAllow(data.model[i]!, BATCH_CATEGORIES)) allows++;
    const body = Buffer.from(JSON.stringify({ purpose: BENCH_PURPOSE, categories: BATCH_CATEGORIES, accountIds: ids }));
    return {
      body,
      allows,
      first: `"results":[{"accountId":"${ids[0]}"`,
      last: `{"accountId":"${ids[ids.length - 1]}"`,
    };
  });

  let turn = 0;
  const next = (): NextRequest => {
    const p = prepared[turn++ % prepared.length]!;
    return {
      body: p.body,
      verify: (text: string, tally: Tally) => {
        const results = occurrences(text, '"accountId":"');
        const allows = occurrences(text, '"allow":true');
        if (results !== perCall) return `${results} results for ${perCall} accounts`;
        if (!text.includes(p.first) || text.lastIndexOf('{"accountId":"') !== text.lastIndexOf(p.last))
          return 'results not in request order';
        if (allows !== p.allows) return `${allows} allows, expected ${p.allows}`;
        tally.allow = (tally.allow ?? 0) + allows;
        tally.deny = (tally.deny ?? 0) + (results - allows);
        return undefined;
      },
    };
  };
  return {
    name: 'batch decisions',
    url,
    path: '/v1/decisions/batch',
    method: 'POST',
    headers: authHeaders(token),
    next,
    timeout: 60,
  };
}

/** Accounts decided per batch call, for the report. */
export const batchCallSize = (data: SeedResult, size: number) => Math.min(size, data.accountIds.length);

/** GET / on the bare express baseline, which answers {"ok":true}. */
export function bareRoute(url: string): Scenario {
  return { name: 'bare express route', url, path: '/', method: 'GET', expectBody: '{"ok":true}' };
}

function occurrences(text: string, needle: string): number {
  let count = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) count++;
  return count;
}
