import { rollUp } from '../../src/audit/rollups';
import { createDb, type Db } from '../../src/platform/db/database';
import { RUNTIME_ROLE } from '../../src/platform/db/roles';
import { createLogger } from '../../src/platform/logger';
import { staffClient } from '../support/console';
import { adminToken, createAccount, decide, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The console's charts (/console/charts): counts rolled up from the audit log by the audit-rollup job (called
 * directly here, as the runtime role the service connects as), shown in tables beside the SVG charts. The numbers
 * on the page must be what the log holds, counted independently from /v1/audit/events; every record is counted
 * exactly once, even by two runs at once; and the page reads the counts, not the log.
 */

let svc: TestService;
let admin: string;
const dbs: Db[] = [];

/** A connection to the test's database as the runtime role (the job's privileges, nothing more). */
function runtimeDb(): Db {
  const u = new URL(svc.databaseUrl);
  u.username = RUNTIME_ROLE;
  const { db } = createDb({ url: u.toString(), poolSize: 2, statementTimeoutMs: 5000 }, createLogger('silent'));
  dbs.push(db);
  return db;
}

/** Runs the rollup in steps of `step` until it has nothing more to count; returns the records counted. */
async function drain(db: Db, step?: number): Promise<number> {
  let counted = 0;
  for (let run = await rollUp(db, step); run; run = await rollUp(db, step)) counted += run.counted;
  return counted;
}

beforeAll(async () => {
  svc = await startTestService({ CONSOLE_SIGNIN_PER_MINUTE: '1000' });
  admin = await adminToken(svc);
}, 60_000);
afterAll(async () => {
  await Promise.all(dbs.map((db) => db.destroy()));
  await svc?.stop();
});

const PURPOSE = 'ad_targeting';

/** Decisions of two pipelines, single and batch, allow and deny; grants and a revocation. */
async function seed(): Promise<void> {
  const [granted, revoked, none] = [
    await createAccount(svc, admin),
    await createAccount(svc, admin),
    await createAccount(svc, admin),
  ];
  const grant = (category: string) => ({ purpose: PURPOSE, category, choice: 'grant' as const });
  expect((await putConsents(svc, admin, granted, [grant('name'), grant('web_browsing_history')])).status).toBe(200);
  expect((await putConsents(svc, admin, revoked, [grant('name')])).status).toBe(200);
  const revoke = { purpose: PURPOSE, category: 'name', choice: 'revoke' as const };
  expect((await putConsents(svc, admin, revoked, [revoke])).status).toBe(200);

  const alpha = await svc.token('decisions', [PURPOSE], { subject: 'ad-pipeline' });
  const beta = await svc.token('decisions', [PURPOSE], { subject: 'pipe-<beta>&co' });
  for (const [accountId, categories] of [
    [granted, ['name']],
    [granted, ['name', 'web_browsing_history']],
    [revoked, ['name']],
    [none, ['name', 'web_browsing_history']],
  ] as const) {
    expect((await decide(svc, alpha, { accountId, purpose: PURPOSE, categories })).status).toBe(200);
  }
  for (const accountIds of [
    [granted, revoked, none],
    [none, granted],
  ]) {
    const r = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: beta,
      body: { purpose: PURPOSE, categories: ['name', 'web_browsing_history'], accountIds },
    });
    expect(r.status).toBe(200);
  }
}

interface Expected {
  allow: number;
  deny: number;
  perClient: Map<string, { allow: number; total: number }>;
  reasons: Map<string, number>;
  granted: number;
  revoked: number;
}

/** Counts the log independently: every record of /v1/audit/events, page by page. */
async function countFromEvents(): Promise<Expected> {
  const e: Expected = { allow: 0, deny: 0, perClient: new Map(), reasons: new Map(), granted: 0, revoked: 0 };
  let cursor: string | null = null;
  do {
    const query: string = `limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await call(svc.url, 'GET', `/v1/audit/events?${query}`, { token: admin });
    expect(r.status).toBe(200);
    for (const ev of r.body.events) {
      if (ev.type === 'decision') {
        const allow = ev.outcome === 'allow';
        if (allow) e.allow++;
        else e.deny++;
        const c = e.perClient.get(ev.data.clientId) ?? { allow: 0, total: 0 };
        c.total++;
        if (allow) c.allow++;
        e.perClient.set(ev.data.clientId, c);
        for (const res of ev.data.results) {
          if (!res.allow) e.reasons.set(res.reason, (e.reasons.get(res.reason) ?? 0) + 1);
        }
      } else if (ev.type === 'consent_event') {
        if (ev.data.kind === 'granted') e.granted++;
        if (ev.data.kind === 'revoked') e.revoked++;
      }
    }
    cursor = r.body.nextCursor;
  } while (cursor);
  return e;
}

const decode = (s: string) =>
  s
    .replace(/<[^>]+>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .trim();

/** The rows of the table in a chart's section (by its id), each a list of cell texts; the head row first. */
function tableOf(html: string, id: string): string[][] {
  const section = html.split(`<section class="chart" aria-labelledby="${id}-heading">`)[1]?.split('</section>')[0];
  if (!section) throw new Error(`no section ${id}`);
  const table = section.split('<table>')[1]?.split('</table>')[0] ?? '';
  return [...table.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((tr) =>
    [...tr[1]!.matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((td) => decode(td[1]!)),
  );
}
const sectionOf = (html: string, id: string) =>
  html.split(`<section class="chart" aria-labelledby="${id}-heading">`)[1]!.split('</section>')[0]!;

const fmt = (n: number) => n.toLocaleString('en-GB');
const pct = (part: number, whole: number) => `${(Math.round((part / whole) * 1000) / 10).toFixed(1)}%`;

describe('the charts page', () => {
  it('says there is nothing yet on an empty log', async () => {
    const client = await staffClient(svc, uniqueId('carol'), 'compliance');
    const page = await client.get('/console/charts');
    expect(page.status).toBe(200);
    expect(page.body).toContain('No decisions in this period.');
    expect(page.body).toContain('No grants or revocations in this period.');
    expect(page.body).not.toContain('<svg');
    expect(page.body).toMatch(/Nothing has been counted yet|holds no records/);
  });

  it("shows in its tables what the log holds, counted once even by two runs at once, '<&' escaped", async () => {
    await seed();
    const db1 = runtimeDb();
    const db2 = runtimeDb();
    // Two workers at once, in small steps: each record is counted by exactly one of them.
    const [a, b] = await Promise.all([drain(db1, 3), drain(db2, 3)]);
    const { rows: head } = await svc.sql.query('select seq::int as seq from audit_head');
    const { rows: state } = await svc.sql.query('select last_seq::int as last_seq from audit_rollup_state');
    expect(state[0].last_seq).toBe(head[0].seq);
    const e = await countFromEvents();
    const decisions = e.allow + e.deny;
    expect(decisions).toBe(4 + 5);
    // Staff actions (account creation, the console's sign-ins) are passed over; the rest counted once.
    expect(a + b).toBe(decisions + e.granted + e.revoked);
    const { rows: sums } = await svc.sql.query(
      'select kind, sum(count)::int as n from audit_rollup_hourly group by kind order by kind',
    );
    const denied = [...e.reasons.values()].reduce((s, n) => s + n, 0);
    expect(sums).toEqual([
      { kind: 'consent', n: e.granted + e.revoked },
      { kind: 'decision', n: decisions },
      { kind: 'denial', n: denied },
    ]);
    expect(await drain(db1)).toBe(0);

    const client = await staffClient(svc, uniqueId('carol'), 'compliance');
    const page = await client.get('/console/charts?days=7');
    expect(page.status).toBe(200);
    const html = page.body;
    expect(html).toMatch(/Counted up to \d\d:\d\d UTC on /);
    for (const id of ['chart-decisions', 'chart-denials', 'chart-pipelines', 'chart-consents']) {
      const section = sectionOf(html, id);
      expect(section).toMatch(/<figure>\s*<svg [^>]*role="img" aria-labelledby="[^"]+-title [^"]+-desc"/);
      expect(section).toMatch(/<title id="[^"]+">[^<]+<\/title><desc id="[^"]+">[^<]+<\/desc>/);
      expect(section).toContain('<figcaption>');
      expect(section).toContain('<caption>');
      expect(section).not.toMatch(/style=/);
    }

    const perDay = tableOf(html, 'chart-decisions');
    expect(perDay[0]).toEqual(['Day', 'Allowed', 'Denied', 'Total']);
    expect(perDay).toHaveLength(1 + 7 + 1);
    expect(perDay.at(-1)).toEqual(['All days', fmt(e.allow), fmt(e.deny), fmt(decisions)]);
    expect(perDay.at(-2)!.slice(1)).toEqual([fmt(e.allow), fmt(e.deny), fmt(decisions)]); // all of it today

    // Each row: `Label (code)`, the count, the share.
    const reasons = tableOf(html, 'chart-denials')
      .slice(1, -1)
      .map((r) => [/\(([a-z_]+)\)$/.exec(r[0]!)?.[1], r[1]]);
    expect(new Map(reasons as [string, string][])).toEqual(
      new Map([...e.reasons].map(([reason, n]) => [reason, fmt(n)])),
    );
    expect(tableOf(html, 'chart-denials').at(-1)).toEqual(['All reasons', fmt(denied), '100.0%']);

    const pipelines = tableOf(html, 'chart-pipelines').slice(1);
    expect(pipelines.map((r) => r[0]).sort()).toEqual(['Our advertising system (ad-pipeline)', 'pipe-<beta>&co']);
    for (const [clientId, c] of e.perClient) {
      const named = svc.config.pipelines.get(clientId);
      const name = named ? `${named} (${clientId})` : clientId;
      expect(pipelines).toContainEqual([name, fmt(c.total), fmt(c.allow), pct(c.allow, c.total)]);
    }
    expect(html).toContain('pipe-&lt;beta&gt;&amp;co');
    expect(html).not.toContain('pipe-<beta>');

    const weeks = tableOf(html, 'chart-consents');
    expect(weeks.at(-1)).toEqual(['All weeks', fmt(e.granted), fmt(e.revoked)]);
    expect(e.granted).toBe(3);
    expect(e.revoked).toBe(1);
  });

  it('reads the counts, not the log: what is logged after the last run shows only after the next', async () => {
    const client = await staffClient(svc, uniqueId('carol'), 'compliance');
    const before = await client.get('/console/charts?days=30');
    const totals = (html: string) => tableOf(html, 'chart-decisions').at(-1);
    const account = await createAccount(svc, admin);
    await decide(svc, admin, { accountId: account, purpose: PURPOSE, categories: ['name'] });
    const after = await client.get('/console/charts?days=30');
    expect(totals(after.body)).toEqual(totals(before.body));
    expect(after.body).toMatch(/\d+ records? logged since then (is|are) not counted yet/);
    const db = runtimeDb();
    expect(await drain(db)).toBeGreaterThan(0);
    const counted = await client.get('/console/charts?days=30');
    const [, allow, deny, total] = totals(counted.body)!;
    const [, allow0, deny0, total0] = totals(before.body)!;
    expect([allow, Number(deny), Number(total)]).toEqual([allow0, Number(deny0) + 1, Number(total0) + 1]);
    expect(counted.body).not.toContain('not counted yet');
  });

  it('offers 7, 30 and 90 days, and nothing else', async () => {
    const client = await staffClient(svc, uniqueId('carol'), 'compliance');
    const page = await client.get('/console/charts?days=90');
    expect(page.body).toContain('<option value="90" selected>Last 90 days</option>');
    expect(tableOf(page.body, 'chart-decisions')).toHaveLength(1 + 90 + 1);
    expect((await client.get('/console/charts?days=5')).status).toBe(422);
  });

  it('is for compliance staff only', async () => {
    const support = await staffClient(svc, uniqueId('bob'), 'support');
    expect((await support.get('/console/charts')).status).toBe(403);
    expect((await call(svc.url, 'GET', '/console/charts')).status).toBe(401);
    expect((await call(svc.url, 'GET', '/console/charts', { token: admin })).status).toBe(403);
  });
});
