import { randomUUID } from 'node:crypto';
import { checkpointAtHead, http } from '../support/audit';
import { PortalClient, signInUrl, textOf } from '../support/browser';
import { type ConsoleClient, staffActions, staffClient } from '../support/console';
import { adminToken, createAccount, decide, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The account timeline (issue 13, point 2): one account's consent events, decisions, exports and console views, newest
 * first, filtered by kind, purpose and period, 50 a page; each row links to its audit record (and a consent event to
 * its receipt); support sees an account only with its ticket; every view is recorded, and the subscriber sees it.
 */

const DAY_MS = 86_400_000;
let offset = 0;
let svc: TestService;
let admin: string;
let pipeline: string;
/** The account of most tests: a consent act 10 days ago, two decisions evaluated 5 days ago, an export today. */
let accountId: string;
let other: string;
const day = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY_MS).toISOString().slice(0, 10);

beforeAll(async () => {
  // The service's clock runs `offset` behind, so that records can be made on other days, in chain order (oldest first:
  // a record's time never goes back along the chain), from the start.
  offset = 10 * DAY_MS;
  svc = await startTestService(
    {
      RUN_WORKERS: 'true',
      AUDIT_CHECKPOINT_INTERVAL_MS: '200',
      CONSOLE_SIGNIN_PER_MINUTE: '1000',
      PORTAL_SIGNIN_PER_MINUTE: '1000',
    },
    { clock: () => new Date(Date.now() - offset) },
  );
  admin = await adminToken(svc);
  const purposes = [...svc.config.catalog.purposes.keys(), ...svc.config.catalog.exceptions.keys()];
  pipeline = await svc.token('decisions', purposes, { subject: 'ad-pipeline', ttlSeconds: 20 * 86_400 });
  accountId = await createAccount(svc, admin);
  other = await createAccount(svc, admin);
  const put = await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
  expect(put.status).toBe(200);
  offset = 5 * DAY_MS;
  const allowed = await decide(svc, pipeline, {
    accountId,
    purpose: 'ad_targeting',
    categories: ['web_browsing_history'],
  });
  expect(allowed.body).toMatchObject({ allow: true });
  const refused = await decide(svc, pipeline, {
    accountId,
    purpose: 'data_sale',
    recipient: 'acme-ads',
    categories: ['financial'],
  });
  expect(refused.body).toMatchObject({ allow: false });
  offset = 0;
  const exp = await http(svc.url, 'POST', '/v1/audit/exports', admin, { format: 'ndjson', accountId });
  expect(exp.status).toBe(202);
  // Another account's consent event, for the support tests.
  await putConsents(svc, admin, other, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
}, 60_000);
afterAll(() => svc?.stop());
afterEach(() => {
  offset = 0;
});

interface Row {
  readonly kind: string;
  readonly seq: number;
  readonly text: string;
  readonly receipt?: string;
}

/** The timeline's rows, in page order. */
function rowsOf(html: string): Row[] {
  const list = /<ol class="timeline"[\s\S]*<\/ol>/.exec(html)?.[0] ?? '';
  return list
    .split('<li class="row ')
    .slice(1)
    .map((chunk) => ({
      kind: /^(\w+)/.exec(chunk)![1]!,
      seq: Number(/href="\/console\/records\/(\d+)"/.exec(chunk)![1]),
      text: textOf(`<li class="${chunk}`),
      receipt: /href="(\/console\/accounts\/[^"]+\/receipts\/[^"]+)"/.exec(chunk)?.[1],
    }));
}

const olderOf = (html: string) => /<a href="([^"]+)">Older</.exec(html)?.[1]?.replaceAll('&amp;', '&');
const page = (client: ConsoleClient, id: string, query = '') =>
  client.get(`/console/accounts/${id}${query ? `?${query}` : ''}`);
const viewsOf = async (actor: string) =>
  (await staffActions(svc, 'console_viewed')).filter((r) => r.data.actor === actor);

async function supportWithTicket(sub: string, account: string, reference: string): Promise<ConsoleClient> {
  const support = await staffClient(svc, sub, 'support');
  const r = await support.post('/console/ticket', { _csrf: await support.csrf(), account, reference });
  expect([r.status, r.location]).toEqual([303, `/console/accounts/${account}`]);
  return support;
}

describe('the account timeline', () => {
  it('shows consent events, decisions, exports and views, newest first, and records every view', async () => {
    const sub = uniqueId('alice');
    const compliance = await staffClient(svc, sub, 'compliance');
    // The search leads to the account.
    const found = await compliance.get(`/console/accounts?account=${accountId}`);
    expect([found.status, found.location]).toEqual([303, `/console/accounts/${accountId}`]);

    const first = await page(compliance, accountId);
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('no-store');
    expect(textOf(first.body)).toContain('Status active');
    const rows = rowsOf(first.body);
    expect(rows.map((r) => r.kind)).toEqual(['export', 'decision', 'decision', 'consent']);
    expect(rows.map((r) => r.seq)).toEqual([...rows.map((r) => r.seq)].sort((a, b) => b - a));

    const [exported, refused, allowed, consent] = rows as [Row, Row, Row, Row];
    expect(consent.text).toContain('Consent event: granted');
    for (const fact of [
      'Purpose Targeted advertising ad_targeting',
      'Category',
      'web_browsing_history',
      'Notice version v3',
      'Channel call_center',
      'Actor staff agent-7',
      'Verification account_pin',
      'Reference CALL-20261203-0042',
    ]) {
      expect([fact, consent.text.includes(fact)]).toEqual([fact, true]);
    }
    expect(consent.receipt).toMatch(new RegExp(`^/console/accounts/${accountId}/receipts/[0-9a-f-]{36}$`));

    expect(allowed.text).toContain('Decision: allowed');
    expect(allowed.text).toContain('Client Our advertising system ad-pipeline (single)');
    expect(allowed.text).toContain('You had allowed this. consent_granted');
    expect(refused.text).toContain('Decision: refused');
    expect(refused.text).toContain('Purpose');
    expect(refused.text).toContain('data_sale');
    expect(refused.text).toContain('acme-ads');
    expect(refused.text).toMatch(/financial ?: refused — You had not allowed this\. no_consent/);
    expect(exported.text).toContain('Export');
    expect(exported.text).toContain('Requested by test-pipeline');
    expect(exported.text).toContain('ndjson');

    // The view is recorded (who, role, which account), and the next page view shows it.
    const views = await viewsOf(sub);
    expect(views).toEqual([
      expect.objectContaining({
        accountId,
        data: { action: 'console_viewed', actor: sub, role: 'compliance', view: 'timeline' },
      }),
    ]);
    const second = rowsOf((await page(compliance, accountId)).body);
    expect(second[0]).toMatchObject({ kind: 'view', seq: views[0]!.seq });
    expect(second[0]!.text).toContain(`Who ${sub} (compliance)`);
  });

  it('filters by kind, purpose and period, in the database, and records what was asked', async () => {
    const sub = uniqueId('filters');
    const compliance = await staffClient(svc, sub, 'compliance');
    const kinds = async (query: string) => {
      const r = await page(compliance, accountId, query);
      expect([query, r.status]).toEqual([query, 200]);
      return rowsOf(r.body).map((x) => x.kind);
    };
    expect(await kinds('kind=consent')).toEqual(['consent']);
    expect(await kinds('kind=decision')).toEqual(['decision', 'decision']);
    expect(await kinds('kind=export')).toEqual(['export']);
    expect((await kinds('kind=view')).every((k) => k === 'view')).toBe(true);
    expect(await kinds('kind=decision&purpose=data_sale')).toEqual(['decision']);
    // A purpose: its consent events and decisions, never exports or views.
    expect(await kinds('purpose=ad_targeting')).toEqual(['decision', 'consent']);
    expect(await kinds('purpose=billing')).toEqual([]);
    // A period of the log's time (when the record was written), whole days in UTC, `to` included; empty fields are no
    // filter.
    expect(await kinds(`from=${day(5)}&to=${day(5)}&kind=&purpose=`)).toEqual(['decision', 'decision']);
    expect(await kinds(`to=${day(6)}`)).toEqual(['consent']);
    expect(await kinds(`from=${day(9)}&to=${day(1)}`)).toEqual(['decision', 'decision']);
    expect(await kinds(`from=${day(4)}&kind=decision`)).toEqual([]);

    const recorded = (await viewsOf(sub)).map((v) => v.data.filters ?? {});
    expect(recorded).toContainEqual({ kind: 'decision', purpose: 'data_sale' });
    expect(recorded).toContainEqual({ from: day(5), to: day(5) });

    for (const bad of [
      'kind=everything',
      'purpose=nope',
      'from=yesterday',
      `from=${day(1)}&to=${day(3)}`,
      'before=x',
    ]) {
      const r = await page(compliance, accountId, bad);
      expect([bad, r.status]).toEqual([bad, 422]);
    }
    // An unknown account is a 404 page; a malformed id, a 422.
    expect((await page(compliance, 'no-such-account')).status).toBe(404);
    expect((await page(compliance, 'bad%20id')).status).toBe(422);
  });

  it('pages 50 at a time with an Older link that keeps the filters', async () => {
    const busy = await createAccount(svc, admin);
    await putConsents(svc, admin, busy, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
    // Batch records too: a verdict's purpose is its header's.
    const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: pipeline,
      body: { purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds: [busy, other] },
    });
    expect(batch.status).toBe(200);
    for (let i = 0; i < 60; i++) {
      const purpose = i % 6 === 0 ? 'product_analytics' : 'ad_targeting';
      const r = await decide(svc, pipeline, { accountId: busy, purpose, categories: ['web_browsing_history'] });
      expect(r.status).toBe(200);
    }
    const compliance = await staffClient(svc, uniqueId('pager'), 'compliance');

    const all: Row[] = [];
    let next: string | undefined = `/console/accounts/${busy}?kind=decision&purpose=ad_targeting`;
    const pages: number[] = [];
    while (next) {
      const r = await compliance.get(next);
      expect(r.status).toBe(200);
      const rows = rowsOf(r.body);
      pages.push(rows.length);
      all.push(...rows);
      next = olderOf(r.body);
      if (next) expect(next).toMatch(/^\/console\/accounts\/[^?]+\?kind=decision&purpose=ad_targeting&before=/);
      if (pages.length > 1) expect(r.body).toMatch(/<a href="[^"]+">Newest</);
    }
    // 50 singles and the batch verdict for ad_targeting; none of product_analytics, no consent event.
    expect(pages).toEqual([50, 1]);
    expect(all.every((r) => r.kind === 'decision' && r.text.includes('ad_targeting'))).toBe(true);
    expect(all.some((r) => r.text.includes('(batch)'))).toBe(true);
    expect(new Set(all.map((r) => r.seq)).size).toBe(51);
    expect(all.map((r) => r.seq)).toEqual([...all.map((r) => r.seq)].sort((a, b) => b - a));

    // Unfiltered: 60 singles, the batch verdict, the consent event (and this session's views after the first page).
    const first = await compliance.get(`/console/accounts/${busy}`);
    expect(rowsOf(first.body)).toHaveLength(50);
    expect(olderOf(first.body)).toMatch(/^\/console\/accounts\/[^?]+\?before=/);
  }, 60_000);

  it('links each row to its audit record (with its inclusion proof) and a consent event to its receipt', async () => {
    const sub = uniqueId('links');
    const compliance = await staffClient(svc, sub, 'compliance');
    const rows = rowsOf((await page(compliance, accountId, 'kind=consent')).body);
    const consent = rows[0]!;

    const record = await compliance.get(`/console/records/${consent.seq}`);
    expect(record.status).toBe(200);
    const text = textOf(record.body);
    expect(text).toContain(`Audit record ${consent.seq}`);
    expect(text).toContain('consent_event');
    expect(text).toContain(`"accountId":"${accountId}"`);
    const { rows: stored } = await svc.sql.query('select hash, prev_hash from audit_records where seq = $1', [
      consent.seq,
    ]);
    expect(text).toContain(stored[0].hash);
    expect(text).toContain(stored[0].prev_hash);

    await checkpointAtHead(svc.sql);
    const withProof = await compliance.get(`/console/records/${consent.seq}`);
    expect(withProof.body).toContain(`href="/console/records/${consent.seq}/proof.json"`);
    const proof = await compliance.get(`/console/records/${consent.seq}/proof.json`);
    expect(proof.status).toBe(200);
    expect(proof.headers.get('content-disposition')).toContain(`optgate-record-${consent.seq}.proof.json`);
    const file = JSON.parse(proof.body);
    expect(file).toMatchObject({ seq: consent.seq, leafIndex: consent.seq - 1, recordHash: stored[0].hash });
    expect(file.treeHead).toEqual(expect.any(String));

    const receipt = await compliance.get(consent.receipt!);
    expect(receipt.status).toBe(200);
    const receiptText = textOf(receipt.body);
    expect(receiptText).toContain('Consent receipt');
    expect(receiptText).toContain('CALL-20261203-0042');
    expect(receiptText).toContain('account_pin');
    expect(receiptText).toMatch(
      /granted ?: Targeted advertising ad_targeting ?, Websites you visit web_browsing_history/,
    );

    expect((await compliance.get('/console/records/999999999')).status).toBe(404);
    expect((await compliance.get(`/console/accounts/${accountId}/receipts/${randomUUID()}`)).status).toBe(404);
    // Another account's receipt is not found under this one.
    const otherRows = rowsOf((await page(compliance, other, 'kind=consent')).body);
    const otherReceipt = otherRows[0]!.receipt!.split('/').at(-1);
    expect((await compliance.get(`/console/accounts/${accountId}/receipts/${otherReceipt}`)).status).toBe(404);

    const filters = (await viewsOf(sub)).map((v) => [v.accountId, v.data.filters]);
    expect(filters).toContainEqual([accountId, { record: String(consent.seq) }]);
    expect(filters).toContainEqual([accountId, { record: String(consent.seq), proof: 'inclusion' }]);
    expect(filters).toContainEqual([accountId, { receipt: consent.receipt!.split('/').at(-1) }]);
  }, 60_000);
});

describe('customer support', () => {
  it('sees nothing of an account without its ticket, the account with it, and no other account', async () => {
    const sub = uniqueId('bob');
    const support = await staffClient(svc, sub, 'support');
    const blocked = await page(support, accountId);
    expect(blocked.status).toBe(403);
    const blockedText = textOf(blocked.body);
    expect(blockedText).toContain('A ticket reference is needed');
    for (const data of ['agent-7', 'CALL-20261203-0042', 'ad-pipeline', 'Timeline', 'Status']) {
      expect([data, blockedText.includes(data)]).toEqual([data, false]);
    }
    expect(await viewsOf(sub)).toEqual([]);

    const reference = `T-${Math.floor(Math.random() * 100000)}`;
    const ticketed = await supportWithTicket(sub, accountId, reference);
    const seen = await page(ticketed, accountId);
    expect(seen.status).toBe(200);
    expect(textOf(seen.body)).toContain('CALL-20261203-0042');
    const consent = rowsOf(seen.body).find((r) => r.kind === 'consent')!;
    expect((await ticketed.get(`/console/records/${consent.seq}`)).status).toBe(200);
    expect((await ticketed.get(consent.receipt!)).status).toBe(200);

    // Another account: the ticket form; another account's record: a plain 403 that names no account.
    expect((await page(ticketed, other)).status).toBe(403);
    const { rows } = await svc.sql.query(
      `select seq::int as seq from audit_records where account_id = $1 and type = 'consent_event' limit 1`,
      [other],
    );
    const foreign = await ticketed.get(`/console/records/${rows[0].seq}`);
    expect(foreign.status).toBe(403);
    expect(foreign.body).not.toContain(other);
    // A record of no account (a sign-in) is compliance's.
    const signIn = (await staffActions(svc, 'console_signed_in')).at(-1)!;
    expect((await ticketed.get(`/console/records/${signIn.seq}`)).status).toBe(403);

    const views = await viewsOf(sub);
    expect(views.length).toBe(3);
    for (const v of views) {
      expect(v).toMatchObject({ accountId, data: { actor: sub, role: 'support', view: 'timeline', reference } });
    }
  });

  it("the subscriber's activity page says when customer support and compliance looked, with the ticket", async () => {
    const account = await createAccount(svc, admin);
    const reference = 'T-123';
    await page(await supportWithTicket(uniqueId('carol'), account, reference), account);
    await page(await staffClient(svc, uniqueId('dave'), 'compliance'), account);
    const subscriber = new PortalClient(svc.url);
    await subscriber.signIn(await signInUrl(svc, account));
    const activity = await subscriber.get('/activity');
    expect(activity.status).toBe(200);
    const today = new Intl.DateTimeFormat('en', { dateStyle: 'long', timeZone: 'UTC' }).format(new Date());
    const text = textOf(activity.body);
    expect(text).toContain('When our staff looked at your account');
    expect(text).toContain(`Viewed by customer support on ${today}, ticket T-123.`);
    expect(text).toContain(`Viewed by our compliance team on ${today}.`);
    // The staff member's name is not the subscriber's business.
    expect(text).not.toContain('carol-');
  });
});

describe('no record, no page', () => {
  it('answers 503 and shows nothing when the view cannot be recorded', async () => {
    const compliance = await staffClient(svc, uniqueId('erin'), 'compliance');
    const lock = await svc.sql.connect();
    try {
      // The chain head held by another transaction: the view's record waits past the statement timeout.
      await lock.query('begin; select seq from audit_head where id = 1 for update');
      const r = await page(compliance, accountId);
      expect(r.status).toBe(503);
      expect(textOf(r.body)).not.toContain('CALL-20261203-0042');
    } finally {
      await lock.query('rollback');
      lock.release();
    }
  }, 30_000);
});
