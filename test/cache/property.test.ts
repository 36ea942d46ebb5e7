import fc from 'fast-check';
import { startCluster, untilCoherent } from '../support/cluster';
import { createAccount, decide, putConsents } from '../support/fixtures';
import type { TestService } from '../support/harness';

/**
 * The caches never change an answer. Random interleavings of grants, revocations, the passing of
 * time (expiries, exact to the millisecond, with the expiry sweep running on one instance) and
 * decisions, each on any of three instances sharing one injected clock: every decision equals
 * what the decision table gives at the decision's own time, computed from a model.
 */

let cluster: Awaited<ReturnType<typeof startCluster>>;
let instances: TestService[];
let admin: string;
let now = Date.now();

beforeAll(async () => {
  cluster = await startCluster(
    3,
    { CACHE_LEASE_MS: '1000', RUN_WORKERS: 'true', EXPIRY_SWEEP_INTERVAL_MS: '1000' },
    { clock: () => new Date(now) },
  );
  instances = cluster.instances;
  // The clock jumps ahead by hours over the run: the token outlives it.
  admin = await instances[0]!.token('decisions consents:write accounts:write', ['ad_targeting'], {
    ttlSeconds: 30 * 86_400,
  });
  await untilCoherent(instances);
});
afterAll(() => cluster.stop());

const CATEGORIES = ['web_browsing_history', 'app_usage_history'] as const;
type Category = (typeof CATEGORIES)[number];

type Op =
  | { kind: 'grant'; on: number; account: number; category: Category; termMs: number }
  | { kind: 'revoke'; on: number; account: number; category: Category }
  | { kind: 'advance'; ms: number }
  | { kind: 'decide'; on: number; account: number; categories: Category[] };

const on = fc.integer({ min: 0, max: 2 });
const account = fc.integer({ min: 0, max: 1 });
const category = fc.constantFrom(...CATEGORIES);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('grant' as const),
    on,
    account,
    category,
    termMs: fc.constantFrom(1, 500, 2000, 60_000),
  }),
  fc.record({ kind: fc.constant('revoke' as const), on, account, category }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(0, 1, 499, 500, 1999, 2000, 3_600_000) }),
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('decide' as const),
      on,
      account,
      categories: fc.subarray([...CATEGORIES], { minLength: 1 }),
    }),
  },
);

interface Held {
  granted: boolean;
  expiresAt: number;
}

it('no decision on any instance differs from the decision table at its own time', async () => {
  let decisions = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
      const accounts = [await createAccount(instances[0]!, admin), await createAccount(instances[0]!, admin)];
      const model = new Map<string, Held>();
      const key = (a: number, c: Category) => `${a}:${c}`;
      for (const o of ops) {
        if (o.kind === 'advance') {
          now += o.ms;
          continue;
        }
        const svc = instances[o.on]!;
        const id = accounts[o.account]!;
        if (o.kind === 'grant') {
          const expiresAt = now + o.termMs;
          const r = await putConsents(svc, admin, id, [
            {
              purpose: 'ad_targeting',
              category: o.category,
              choice: 'grant',
              expiresAt: new Date(expiresAt).toISOString(),
            },
          ]);
          expect(r.status).toBe(200);
          model.set(key(o.account, o.category), { granted: true, expiresAt });
        } else if (o.kind === 'revoke') {
          const r = await putConsents(svc, admin, id, [
            { purpose: 'ad_targeting', category: o.category, choice: 'revoke' },
          ]);
          expect(r.status).toBe(200);
          model.set(key(o.account, o.category), { granted: false, expiresAt: 0 });
        } else {
          const r = await decide(svc, admin, { accountId: id, purpose: 'ad_targeting', categories: o.categories });
          expect(r.status).toBe(200);
          decisions++;
          const expected = o.categories.every((c) => {
            const held = model.get(key(o.account, c));
            return held?.granted === true && now < held.expiresAt;
          });
          if (r.body.allow !== expected) {
            throw new Error(
              `instance ${o.on} answered allow=${r.body.allow}, the table gives ${expected}: ${JSON.stringify(r.body)}`,
            );
          }
        }
      }
    }),
    { numRuns: 40 },
  );
  expect(decisions).toBeGreaterThan(100);
}, 240_000);
