import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import { type Catalog, currentNotice, type Notice } from '../../src/platform/config/catalog';
import { createDb, ensureDatabase } from '../../src/platform/db/database';
import { migrateToLatest } from '../../src/platform/db/migrator';
import { createLogger } from '../../src/platform/logger';
import { prng } from '../../src/platform/random';
import { dropDatabase } from '../support/database';

/**
 * Benchmark data: N accounts with a realistic mix of consents, written straight into the tables
 * (accounts, consent_events, consent_state) with multi-row `unnest` inserts, the way a bulk import
 * would. Test-only code: the service never writes consent rows like this.
 *
 * The mix, per account (independent draws, reproducible from the seed):
 *   - 5% closed accounts (they keep their consent history);
 *   - ad_targeting × web_browsing_history: 35% granted under the notice in force then, expiring
 *     6–12 months from now (40% of them granted app_usage_history in the same act), of which 10%
 *     later revoked (both); 5% granted long ago and now expired (marked by the sweep); 10% declined;
 *     the rest never asked;
 *   - other_customer_info (opt-out regime): 10% opted out for every consent purpose (as a GPC signal
 *     does), a fifth of whom later withdrew the opt-out;
 *   - product_analytics × app_usage_history: 15% granted (not asked about by the benchmark; it
 *     makes the state table the size it would be).
 *
 * For every account the seed also returns what a decision for ad_targeting must say (`model`), so
 * the load phases can check each answer against data they did not get from the service.
 */

export const BENCH_PURPOSE = 'ad_targeting';

const Bit = { Closed: 1, WebBrowsingAllowed: 2, AppUsageAllowed: 4, OptedOut: 8 } as const;

/** Whether an ad_targeting decision on `categories` must allow, for an account whose model byte is `model`. */
export function expectedAllow(model: number, categories: readonly string[]): boolean {
  if (model & Bit.Closed) return false;
  for (const c of categories) {
    if (c === 'web_browsing_history' && !(model & Bit.WebBrowsingAllowed)) return false;
    if (c === 'app_usage_history' && !(model & Bit.AppUsageAllowed)) return false;
    if (c === 'other_customer_info' && model & Bit.OptedOut) return false;
    // Never granted:
    if (c !== 'web_browsing_history' && c !== 'app_usage_history' && c !== 'other_customer_info') return false;
  }
  return categories.length > 0;
}

export interface SeedResult {
  readonly accountIds: readonly string[];
  /** One byte per account (same index as accountIds): what an ad_targeting decision must say. */
  readonly model: Uint8Array;
  readonly events: number;
  readonly states: number;
  /** Accounts per situation, for the report. */
  readonly mix: Readonly<Record<string, number>>;
  readonly ms: number;
}

/** Drops and recreates the benchmark database and migrates it, so that every run starts from the same place. */
export async function resetDatabase(url: string): Promise<string[]> {
  await dropDatabase(url);
  await ensureDatabase(url);
  const { db } = createDb({ url, poolSize: 1, statementTimeoutMs: 60_000 }, createLogger('warn'));
  try {
    return await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

export const accountId = (i: number) => `acct-${String(i + 1).padStart(8, '0')}`;

interface EventRow {
  readonly uuid: string;
  readonly account: string;
  readonly purpose: string;
  readonly category: string;
  readonly kind: string;
  readonly actorType: string;
  readonly actorId: string | null;
  readonly channel: string;
  readonly clientId: string | null;
  readonly notice: Notice;
  readonly at: number;
  readonly expires: number | null;
  readonly requestId: string | null;
  readonly ipHash: string | null;
  readonly uaHash: string | null;
}

interface StateRow {
  readonly account: string;
  readonly purpose: string;
  readonly category: string;
  state: string;
  consentUuid: string;
  noticeVersion: string;
  grantedAt: number | null;
  expiresAt: number | null;
  revokedAt: number | null;
  updatedAt: number;
  lastEventUuid: string;
}

const DAY = 86_400_000;
const CHUNK = 10_000;

export async function seed(url: string, count: number, catalog: Catalog, seedValue: number): Promise<SeedResult> {
  const started = performance.now();
  const rand = prng(seedValue);
  const now = Date.now();
  const term = catalog.consentTermDays * DAY;
  const purposes = [...catalog.purposes.keys()];
  const hashes = Array.from({ length: 512 }, (_, i) =>
    createHash('sha256').update(`bench-${seedValue}-${i}`).digest('hex'),
  );
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

  const ids: string[] = new Array(count);
  const status: string[] = new Array(count);
  const serviceState: (string | null)[] = new Array(count);
  const billingState: (string | null)[] = new Array(count);
  const model = new Uint8Array(count);
  const events: EventRow[] = [];
  const states = new Map<string, StateRow>();
  const mix: Record<string, number> = {
    closed: 0,
    'web_browsing granted (active)': 0,
    'web_browsing revoked': 0,
    'web_browsing expired': 0,
    'web_browsing declined': 0,
    'web_browsing never asked': 0,
    'app_usage granted (active)': 0,
    'other_info opted out': 0,
    'other_info opt-out withdrawn': 0,
  };

  /** One act of a subscriber or staff member: several changes at one time, through one channel. */
  const act = (
    account: string,
    at: number,
    changes: { purpose: string; category: string; kind: string; expires?: number | null }[],
    o: { system?: boolean; notice?: Notice } = {},
  ) => {
    const system = o.system ?? false;
    const notice = o.notice ?? currentNotice(catalog, new Date(at)) ?? catalog.notices[0]!;
    const r = rand();
    const channel = system
      ? 'system'
      : r < 0.7
        ? 'portal'
        : r < 0.88
          ? 'api'
          : r < 0.97
            ? 'call_center'
            : 'point_of_sale';
    const staff = channel === 'call_center' || channel === 'point_of_sale';
    const requestId = system ? null : randomUUID();
    const ipHash = system ? null : pick(hashes);
    const uaHash = system ? null : pick(hashes);
    for (const c of changes) {
      const uuid = randomUUID();
      events.push({
        uuid,
        account,
        purpose: c.purpose,
        category: c.category,
        kind: c.kind,
        actorType: system ? 'system' : staff ? 'staff' : 'subscriber',
        actorId: staff ? `agent-${1 + Math.floor(rand() * 300)}` : null,
        channel,
        clientId:
          channel === 'api'
            ? 'crm-sync'
            : channel === 'call_center'
              ? 'call-center-desk'
              : channel === 'point_of_sale'
                ? 'store-pos'
                : null,
        notice,
        at,
        expires: c.expires ?? null,
        requestId,
        ipHash,
        uaHash,
      });
      // The derived state, as ConsentService.record / markExpired would leave it.
      const key = `${account}\u0000${c.purpose}\u0000${c.category}`;
      const before = states.get(key);
      const state =
        c.kind === 'granted' || c.kind === 'renewed'
          ? 'granted'
          : c.kind === 'opted_out'
            ? 'opted_out'
            : c.kind === 'opt_out_withdrawn'
              ? 'not_opted_out'
              : c.kind; // revoked, declined, expired
      const granted = state === 'granted';
      const keepsGrant = state === 'revoked' || state === 'expired';
      states.set(key, {
        account,
        purpose: c.purpose,
        category: c.category,
        state,
        consentUuid: uuid,
        noticeVersion: notice.version,
        grantedAt: granted ? at : keepsGrant ? (before?.grantedAt ?? null) : null,
        expiresAt: granted ? (c.expires ?? null) : keepsGrant ? (before?.expiresAt ?? null) : null,
        revokedAt: state === 'revoked' ? at : null,
        updatedAt: at,
        lastEventUuid: uuid,
      });
    }
  };

  for (let i = 0; i < count; i++) {
    const id = accountId(i);
    ids[i] = id;
    let bits = 0;
    if (rand() < 0.05) {
      bits |= Bit.Closed;
      status[i] = 'closed';
      serviceState[i] = 'disconnected';
      billingState[i] = rand() < 0.8 ? 'final_billed' : 'collections';
      mix.closed!++;
    } else {
      status[i] = 'active';
      serviceState[i] = rand() < 0.02 ? 'suspended' : 'in_service';
      billingState[i] = rand() < 0.06 ? 'past_due' : 'current';
    }

    const u = rand();
    if (u < 0.35) {
      const expires = now + (182 + rand() * 183) * DAY;
      const at = expires - term;
      const withApp = rand() < 0.4;
      const cats = withApp ? ['web_browsing_history', 'app_usage_history'] : ['web_browsing_history'];
      act(
        id,
        at,
        cats.map((category) => ({ purpose: BENCH_PURPOSE, category, kind: 'granted', expires })),
      );
      if (rand() < 0.1) {
        act(
          id,
          at + rand() * (now - at - 60_000),
          cats.map((category) => ({ purpose: BENCH_PURPOSE, category, kind: 'revoked' })),
        );
        mix['web_browsing revoked']!++;
      } else {
        bits |= Bit.WebBrowsingAllowed | (withApp ? Bit.AppUsageAllowed : 0);
        mix['web_browsing granted (active)']!++;
        if (withApp) mix['app_usage granted (active)']!++;
      }
    } else if (u < 0.4) {
      // The sweep (ConsentService.markExpired) records the expiry under the notice of the grant.
      const expires = now - (1 + rand() * 180) * DAY;
      const notice = currentNotice(catalog, new Date(expires - term)) ?? catalog.notices[0]!;
      act(
        id,
        expires - term,
        [{ purpose: BENCH_PURPOSE, category: 'web_browsing_history', kind: 'granted', expires }],
        { notice },
      );
      act(
        id,
        expires + rand() * 60_000,
        [{ purpose: BENCH_PURPOSE, category: 'web_browsing_history', kind: 'expired', expires }],
        { system: true, notice },
      );
      mix['web_browsing expired']!++;
    } else if (u < 0.5) {
      act(id, now - (1 + rand() * 400) * DAY, [
        { purpose: BENCH_PURPOSE, category: 'web_browsing_history', kind: 'declined' },
      ]);
      mix['web_browsing declined']!++;
    } else {
      mix['web_browsing never asked']!++;
    }

    if (rand() < 0.1) {
      const at = now - (30 + rand() * 700) * DAY;
      act(
        id,
        at,
        purposes.map((purpose) => ({ purpose, category: 'other_customer_info', kind: 'opted_out' })),
      );
      if (rand() < 0.2) {
        act(
          id,
          at + rand() * (now - at - 60_000),
          purposes.map((purpose) => ({ purpose, category: 'other_customer_info', kind: 'opt_out_withdrawn' })),
        );
        mix['other_info opt-out withdrawn']!++;
      } else {
        bits |= Bit.OptedOut;
        mix['other_info opted out']!++;
      }
    }

    if (rand() < 0.15) {
      const expires = now + (1 + rand() * 364) * DAY;
      act(id, expires - term, [
        { purpose: 'product_analytics', category: 'app_usage_history', kind: 'granted', expires },
      ]);
    }
    model[i] = bits;
  }

  // The change feed is ordered by consent_events.id: insert in time order, as the events happened.
  events.sort((a, b) => a.at - b.at);
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

  const client = new pg.Client({ connectionString: url, application_name: 'optgate-bench-seed' });
  await client.connect();
  try {
    await client.query('begin');
    await client.query('set local synchronous_commit = off');
    for (let from = 0; from < count; from += CHUNK) {
      const to = Math.min(count, from + CHUNK);
      await client.query(
        `insert into accounts (account_id, status, service_state, billing_state)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
        [ids.slice(from, to), status.slice(from, to), serviceState.slice(from, to), billingState.slice(from, to)],
      );
    }
    for (let from = 0; from < events.length; from += CHUNK) {
      const chunk = events.slice(from, from + CHUNK);
      const col = <T>(f: (e: EventRow) => T) => chunk.map(f);
      await client.query(
        `insert into consent_events (event_id, account_id, purpose, category, kind, actor_type, actor_id,
           channel, client_id, notice_version, notice_sha256, occurred_at, expires_at, request_id, ip_hash,
           user_agent_hash)
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
           $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::text[],
           $15::text[], $16::text[])`,
        [
          col((e) => e.uuid),
          col((e) => e.account),
          col((e) => e.purpose),
          col((e) => e.category),
          col((e) => e.kind),
          col((e) => e.actorType),
          col((e) => e.actorId),
          col((e) => e.channel),
          col((e) => e.clientId),
          col((e) => e.notice.version),
          col((e) => e.notice.sha256),
          col((e) => iso(e.at)),
          col((e) => iso(e.expires)),
          col((e) => e.requestId),
          col((e) => e.ipHash),
          col((e) => e.uaHash),
        ],
      );
    }
    const stateRows = [...states.values()];
    for (let from = 0; from < stateRows.length; from += CHUNK) {
      const chunk = stateRows.slice(from, from + CHUNK);
      const col = <T>(f: (s: StateRow) => T) => chunk.map(f);
      // last_event_id is the feed id the database gave the last event: look it up by its uuid.
      await client.query(
        `insert into consent_state (account_id, purpose, category, state, consent_id, notice_version,
           granted_at, expires_at, revoked_at, updated_at, last_event_id)
         select s.account_id, s.purpose, s.category, s.state, s.consent_id, s.notice_version,
           s.granted_at, s.expires_at, s.revoked_at, s.updated_at, e.id
         from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[],
           $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::uuid[])
           as s(account_id, purpose, category, state, consent_id, notice_version, granted_at, expires_at, revoked_at,
             updated_at, last_event)
         join consent_events e on e.event_id = s.last_event`,
        [
          col((s) => s.account),
          col((s) => s.purpose),
          col((s) => s.category),
          col((s) => s.state),
          col((s) => s.consentUuid),
          col((s) => s.noticeVersion),
          col((s) => iso(s.grantedAt)),
          col((s) => iso(s.expiresAt)),
          col((s) => iso(s.revokedAt)),
          col((s) => iso(s.updatedAt)),
          col((s) => s.lastEventUuid),
        ],
      );
    }
    await client.query('commit');
    // Statistics and the visibility map, as a database that has been running for a while would have.
    await client.query('vacuum analyze accounts, consent_events, consent_state');
    const counted = await client.query<{ accounts: string; events: string; states: string }>(
      `select (select count(*) from accounts) as accounts, (select count(*) from consent_events) as events,
              (select count(*) from consent_state) as states`,
    );
    const row = counted.rows[0]!;
    if (
      Number(row.accounts) !== count ||
      Number(row.events) !== events.length ||
      Number(row.states) !== stateRows.length
    ) {
      throw new Error(
        `seed check failed: expected ${count}/${events.length}/${stateRows.length} rows, found ` +
          `${row.accounts}/${row.events}/${row.states}`,
      );
    }
    return {
      accountIds: ids,
      model,
      events: events.length,
      states: stateRows.length,
      mix,
      ms: performance.now() - started,
    };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}
