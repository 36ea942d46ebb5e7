import { sql } from 'kysely';
import type { Db } from '../platform/db/database';
import { allowReason } from '../platform/vocabulary';
import { REASONS, verdictAllows } from './decisions';

/**
 * Hourly counts of the audit log (migration 0020), for the console's charts: the charts read these
 * few rows by their index (kind, hour), never the log itself.
 *
 * What is counted, per hour (UTC) of the records' `recordedAt`:
 * - `decision`: every decision record, that is every account judged (a batch of 500 accounts is 500), by client,
 *   purpose and outcome;
 * - `denial`: every category a decision record refused, by its reason (a record refused for two categories counts
 *   twice; a category allowed within a denied record does not count);
 * - `consent`: every consent_event record, by client, purpose and kind (all kinds are kept; the charts show
 *   `granted` and `revoked`).
 * Staff actions are not counted.
 *
 * Exactly once: a run locks the one state row (`for update`), reads the records after its `last_seq` (up to the chain
 * head, at most `step` of them), adds their counts and moves `last_seq`, in one transaction. A second run, on
 * another worker, waits on that lock and then reads the moved watermark; a run that fails counts nothing.
 */

/** Records counted per run at most: a run stays short however far behind the counts are. */
export const ROLLUP_STEP = 50_000;

export interface RollupRun {
  /** The records counted: seq in (from, to]. */
  readonly from: number;
  readonly to: number;
  /** Decision and consent records counted (staff actions are passed over). */
  readonly counted: number;
}

type Kind = 'decision' | 'denial' | 'consent';

/** Counts by key, the key the table's primary key after (kind, hour). */
class Counts {
  private readonly counts = new Map<string, number>();

  add(kind: Kind, hour: number, clientId: string, purpose: string, outcome: string, reason: string, event: string) {
    const key = JSON.stringify([kind, hour, clientId, purpose, outcome, reason, event]);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  get size() {
    return this.counts.size;
  }

  /** Columns as arrays, for one insert … select from unnest. */
  columns() {
    const cols = {
      kind: [] as string[],
      hour: [] as string[],
      rest: [[], [], [], [], []] as string[][],
      n: [] as string[],
    };
    for (const [key, n] of this.counts) {
      const [kind, hour, ...rest] = JSON.parse(key) as [string, number, ...string[]];
      cols.kind.push(kind);
      cols.hour.push(new Date(hour).toISOString());
      rest.forEach((v, i) => {
        cols.rest[i]!.push(v);
      });
      cols.n.push(String(n));
    }
    return cols;
  }
}

const HOUR = 3_600_000;
const hourOf = (at: Date) => Math.floor(at.getTime() / HOUR) * HOUR;
const ALLOWING = new Set<string>(allowReason.options);

/**
 * The reasons of the categories a verdict (decisions.ts, the verdict bytes) refused, in category order; undefined for
 * bytes that do not decode (they are not counted as denials; the record still counts by its flag).
 */
export function deniedReasons(categories: number, verdict: Uint8Array): string[] | undefined {
  const reasons: string[] = [];
  let at = 1;
  for (let i = 0; i < categories; i++) {
    const reason = REASONS[verdict[at++]!];
    if (reason === undefined || at > verdict.length) return undefined;
    if (reason === 'consent_granted') at += 22;
    else if (!ALLOWING.has(reason)) reasons.push(reason);
  }
  return at <= verdict.length ? reasons : undefined;
}

interface HeaderRow {
  seq: string;
  count: number;
  recorded_at: Date;
  client_id: string;
  purpose: string;
  categories: string;
}

/** Counts the records after the watermark (at most `step`) and moves it, in one transaction. Undefined: none new. */
export async function rollUp(db: Db, step = ROLLUP_STEP): Promise<RollupRun | undefined> {
  return db.transaction().execute(async (trx) => {
    const state = await sql<{ last_seq: string; last_recorded_at: Date | null }>`
      select last_seq, last_recorded_at from audit_rollup_state where id = 1 for update`.execute(trx);
    const from = Number(state.rows[0]?.last_seq ?? Number.NaN);
    if (!Number.isSafeInteger(from)) throw new Error('audit_rollup_state is missing: the database is not migrated');
    // Every record up to the head's seq is committed (the head moves in the transaction that writes them).
    const head = await sql<{ seq: string }>`select seq from audit_head where id = 1`.execute(trx);
    const to = Math.min(Number(head.rows[0]?.seq ?? 0), from + step);
    if (to <= from) return undefined;
    const lo = String(from);
    const hi = String(to);

    const [plain, singles, headers, verdicts] = await Promise.all([
      sql<{ seq: string; recorded_at: Date; type: string; outcome: string | null; content: string }>`
        select seq, recorded_at, type, outcome, content from audit_records
        where seq > ${lo} and seq <= ${hi}`.execute(trx),
      sql<HeaderRow & { verdict: Buffer }>`
        select seq, count, recorded_at, client_id, purpose, categories, verdict from audit_decisions
        where seq > ${lo} and seq <= ${hi} and verdict is not null`.execute(trx),
      // The batch headers whose records fall in the range: those starting in it, and the one before it.
      sql<HeaderRow>`
        (select seq, count, recorded_at, client_id, purpose, categories from audit_decisions
         where account_id is null and seq <= ${lo} order by seq desc limit 1)
        union all
        select seq, count, recorded_at, client_id, purpose, categories from audit_decisions
        where account_id is null and seq > ${lo} and seq <= ${hi}`.execute(trx),
      sql<{ seq: string; verdict: Buffer }>`
        select seq, verdict from audit_verdicts where seq > ${lo} and seq <= ${hi} order by seq`.execute(trx),
    ]);

    const counts = new Counts();
    let counted = 0;
    let lastAt = state.rows[0]!.last_recorded_at;
    const seen = (at: Date, count = true) => {
      if (count) counted++;
      if (!lastAt || at > lastAt) lastAt = at;
    };
    const decision = (h: HeaderRow, allow: boolean, denied: readonly string[] | undefined) => {
      const hour = hourOf(h.recorded_at);
      counts.add('decision', hour, h.client_id, h.purpose, allow ? 'allow' : 'deny', '', '');
      for (const reason of denied ?? []) counts.add('denial', hour, h.client_id, h.purpose, '', reason, '');
      seen(h.recorded_at);
    };

    for (const r of plain.rows) {
      // A staff action is not counted, but it is as far as the counts go.
      if (r.type === 'staff_action') {
        seen(r.recorded_at, false);
        continue;
      }
      const data = JSON.parse(r.content).data as Record<string, unknown>;
      const hour = hourOf(r.recorded_at);
      const clientId = typeof data.clientId === 'string' ? data.clientId : '';
      const purpose = String(data.purpose ?? '');
      if (r.type === 'consent_event') {
        counts.add('consent', hour, clientId, purpose, '', '', String(data.kind));
        seen(r.recorded_at);
        continue;
      }
      // A decision from before format 2: its results are in its content.
      const results = (data.results ?? []) as { allow?: boolean; reason?: string }[];
      const denied = results.filter((x) => x.allow === false).map((x) => String(x.reason));
      decision(
        { seq: r.seq, count: 1, recorded_at: r.recorded_at, client_id: clientId, purpose, categories: '' },
        r.outcome === 'allow',
        denied,
      );
    }
    for (const s of singles.rows) {
      decision(s, verdictAllows(s.verdict), deniedReasons(s.categories.split(',').length, s.verdict));
    }
    const sorted = headers.rows.sort((a, b) => Number(a.seq) - Number(b.seq));
    let h = 0;
    for (const v of verdicts.rows) {
      const seq = Number(v.seq);
      while (h + 1 < sorted.length && Number(sorted[h + 1]!.seq) <= seq) h++;
      const header = sorted[h];
      // A verdict no header holds (written behind the log's back) is not counted: `audit verify` reports it.
      if (!header || seq < Number(header.seq) || seq >= Number(header.seq) + header.count) continue;
      decision(header, verdictAllows(v.verdict), deniedReasons(header.categories.split(',').length, v.verdict));
    }

    if (counts.size) {
      const c = counts.columns();
      await sql`
        insert into audit_rollup_hourly as r (kind, hour, client_id, purpose, outcome, reason, event, count)
        select * from unnest(${c.kind}::text[], ${c.hour}::timestamptz[], ${c.rest[0]}::text[], ${c.rest[1]}::text[],
          ${c.rest[2]}::text[], ${c.rest[3]}::text[], ${c.rest[4]}::text[], ${c.n}::bigint[])
        on conflict (kind, hour, client_id, purpose, outcome, reason, event)
        do update set count = r.count + excluded.count`.execute(trx);
    }
    await sql`update audit_rollup_state set last_seq = ${hi}, last_recorded_at = ${lastAt} where id = 1`.execute(trx);
    return { from, to, counted };
  });
}

/** How far the counts go: the last record counted (seq and time) and the chain head's seq. */
export interface RollupState {
  readonly lastSeq: number;
  readonly lastRecordedAt?: Date;
  readonly headSeq: number;
}

export async function rollupState(db: Db): Promise<RollupState> {
  const { rows } = await sql<{ last_seq: string; last_recorded_at: Date | null; head: string | null }>`
    select s.last_seq, s.last_recorded_at, (select seq from audit_head where id = 1) as head
    from audit_rollup_state s where s.id = 1`.execute(db);
  const r = rows[0];
  return {
    lastSeq: Number(r?.last_seq ?? 0),
    ...(r?.last_recorded_at ? { lastRecordedAt: r.last_recorded_at } : {}),
    headSeq: Number(r?.head ?? 0),
  };
}

/** The counts the charts show, for records in [from, to) (whole hours). Read from audit_rollup_hourly only. */
export interface RollupCounts {
  /** Decisions per UTC day (`YYYY-MM-DD`) and outcome. */
  readonly perDay: readonly { readonly day: string; readonly outcome: 'allow' | 'deny'; readonly count: number }[];
  /** Refused categories per reason. */
  readonly denials: readonly { readonly reason: string; readonly count: number }[];
  /** Decisions per client and outcome. */
  readonly perClient: readonly {
    readonly clientId: string;
    readonly outcome: 'allow' | 'deny';
    readonly count: number;
  }[];
  /** Consent events of the given kinds per ISO week (its Monday, `YYYY-MM-DD`) and kind. */
  readonly perWeek: readonly { readonly week: string; readonly event: string; readonly count: number }[];
}

export async function rollupCounts(
  db: Db,
  from: Date,
  to: Date,
  events: readonly string[] = ['granted', 'revoked'],
): Promise<RollupCounts> {
  const num = <R extends { count: string }>(rows: R[]) => rows.map((r) => ({ ...r, count: Number(r.count) }));
  const [perDay, denials, perClient, perWeek] = await Promise.all([
    sql<{ day: string; outcome: 'allow' | 'deny'; count: string }>`
      select to_char(hour at time zone 'UTC', 'YYYY-MM-DD') as day, outcome, sum(count)::text as count
      from audit_rollup_hourly where kind = 'decision' and hour >= ${from} and hour < ${to}
      group by 1, 2 order by 1, 2`.execute(db),
    sql<{ reason: string; count: string }>`
      select reason, sum(count)::text as count
      from audit_rollup_hourly where kind = 'denial' and hour >= ${from} and hour < ${to}
      group by 1 order by 2 desc, 1`.execute(db),
    sql<{ clientId: string; outcome: 'allow' | 'deny'; count: string }>`
      select client_id as "clientId", outcome, sum(count)::text as count
      from audit_rollup_hourly where kind = 'decision' and hour >= ${from} and hour < ${to}
      group by 1, 2 order by 1, 2`.execute(db),
    sql<{ week: string; event: string; count: string }>`
      select to_char(date_trunc('week', hour at time zone 'UTC'), 'YYYY-MM-DD') as week, event,
        sum(count)::text as count
      from audit_rollup_hourly where kind = 'consent' and hour >= ${from} and hour < ${to}
        and event = any(${[...events]}::text[])
      group by 1, 2 order by 1, 2`.execute(db),
  ]);
  return {
    perDay: num(perDay.rows),
    denials: num(denials.rows),
    perClient: num(perClient.rows),
    perWeek: num(perWeek.rows),
  };
}
