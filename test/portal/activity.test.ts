import { PortalClient, signInUrl, textOf } from '../support/browser';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The activity page as a person reads it: a heading per day, each decision one sentence (who, for what, which
 * information, the answer) with its reasons in plain words, each once; names, never client ids; a filter by answer,
 * applied in the database, that paginates like the whole list.
 */

const DAY_MS = 86_400_000;
let offset = 0;
let svc: TestService;
let admin: string;
/** Named in config/pipelines.json. */
let named: string;
/** Not named: shown as "one of our systems". */
let unnamed: string;

beforeAll(async () => {
  // The service's clock runs `offset` behind: decisions made "yesterday" are evaluated, and recorded, then.
  svc = await startTestService({ PORTAL_SIGNIN_PER_MINUTE: '1000' }, { clock: () => new Date(Date.now() - offset) });
  admin = await adminToken(svc);
  const purposes = [...svc.config.catalog.purposes.keys(), ...svc.config.catalog.exceptions.keys()];
  named = await svc.token('decisions', purposes, { subject: 'ad-pipeline', ttlSeconds: 3 * 86_400 });
  unnamed = await svc.token('decisions', purposes, { ttlSeconds: 3 * 86_400 });
});
afterAll(() => svc.stop());
afterEach(() => {
  offset = 0;
});

interface Entry {
  readonly outcome: string;
  readonly at: string;
  readonly lines: string[];
}

/** The page's days, in order, each with its entries: the answer and time, the sentence, the reasons. */
function activityOf(html: string): { day: string; entries: Entry[] }[] {
  const main = /<main[\s\S]*?<\/main>/.exec(html)![0];
  return main
    .split(/<h2>/)
    .slice(1)
    .map((section) => ({
      day: textOf(section.slice(0, section.indexOf('</h2>'))),
      entries: [...section.matchAll(/<li class="entry (allowed|refused)">([\s\S]*?)<\/li>/g)].map((m) => ({
        outcome: m[1]!,
        at: /<time datetime="([^"]+)"/.exec(m[2]!)![1]!,
        lines: [...m[2]!.matchAll(/<p[^>]*>([\s\S]*?)<\/p>/g)].map((p) => textOf(p[1]!)),
      })),
    }));
}

const olderOf = (html: string) => /<a href="([^"]+)">Older</.exec(html)?.[1]?.replaceAll('&amp;', '&');
const longDate = (d: Date) => new Intl.DateTimeFormat('en', { dateStyle: 'long', timeZone: 'UTC' }).format(d);

async function signedIn(accountId: string): Promise<PortalClient> {
  const client = new PortalClient(svc.url);
  await client.signIn(await signInUrl(svc, accountId));
  return client;
}

/** Every page of a listing, following the Older links: the entries of each page. */
async function allPages(client: PortalClient, first: string): Promise<{ entries: Entry[]; links: string[] }[]> {
  const pages: { entries: Entry[]; links: string[] }[] = [];
  for (let target: string | undefined = first; target; ) {
    const page = await client.get(target);
    expect(page.status).toBe(200);
    pages.push({
      entries: activityOf(page.body).flatMap((d) => d.entries),
      links: [...page.body.matchAll(/<nav class="pager"[\s\S]*?<\/nav>/g)].flatMap((n) =>
        [...n[0].matchAll(/href="([^"]+)"/g)].map((m) => m[1]!.replaceAll('&amp;', '&')),
      ),
    });
    target = olderOf(page.body);
  }
  return pages;
}

it('a heading per day, newest first; each decision one sentence, with names not ids, each reason once', async () => {
  const accountId = await createAccount(svc, admin);
  offset = DAY_MS;
  const yesterday = new Date(Date.now() - DAY_MS);
  await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
  const allowed = { accountId, purpose: 'ad_targeting', categories: ['web_browsing_history'] };
  expect((await decide(svc, named, allowed)).body.allow).toBe(true);
  const sale = { accountId, purpose: 'data_sale', recipient: 'acme-ads', categories: ['financial', 'health'] };
  expect((await decide(svc, unnamed, sale)).body.allow).toBe(false);
  offset = 0;
  const today = new Date();
  const mixed = { accountId, purpose: 'ad_targeting', categories: ['web_browsing_history', 'name', 'health'] };
  expect((await decide(svc, named, mixed)).body.allow).toBe(false);
  const fraud = { accountId, purpose: 'fraud_protection', categories: ['ip_addresses'] };
  expect((await decide(svc, unnamed, fraud)).body.allow).toBe(true);

  const client = await signedIn(accountId);
  const page = await client.get('/activity');
  expect(page.status).toBe(200);
  const days = activityOf(page.body);
  expect(days.map((d) => d.day)).toEqual([longDate(today), longDate(yesterday)]);
  const lines = days.map((d) => d.entries.map((e) => [e.outcome, ...e.lines]));
  expect(lines).toEqual([
    [
      [
        'allowed',
        expect.stringMatching(/^Allowed \d{1,2}:\d{2} [AP]M UTC$/),
        'One of our systems asked to use “The addresses your traffic comes from and goes to” for ' +
          '“Protecting you, us and others against fraud, abuse and unlawful use”, and we allowed it.',
        'The law allows this without your permission.',
      ],
      [
        'refused',
        expect.stringMatching(/^Refused \d{1,2}:\d{2} [AP]M UTC$/),
        'Our advertising system asked to use “Websites you visit”, “Your name”, and “Health information” for ' +
          '“Targeted advertising”, and we refused.',
        // Two categories refused for the same reason: said once; the one allowed is not a reason for a refusal.
        'You had not allowed this.',
      ],
    ],
    [
      [
        'refused',
        expect.stringMatching(/^Refused \d{1,2}:\d{2} [AP]M UTC$/),
        'One of our systems asked to share “Financial information” and “Health information” with ' +
          'Acme Advertising LLC for “Selling your data”, and we refused.',
        'You had not allowed this.',
      ],
      [
        'allowed',
        expect.stringMatching(/^Allowed \d{1,2}:\d{2} [AP]M UTC$/),
        'Our advertising system asked to use “Websites you visit” for “Targeted advertising”, and we allowed it.',
        'You had allowed this.',
      ],
    ],
  ]);
  // The answer is a word (above), not a colour alone: the word is the entry's first.
  expect(page.body).toMatch(/<li class="entry allowed">\s*<p class="answer"><strong class="outcome">Allowed<\/strong>/);
  // Times are the decisions' own, under their day's heading.
  expect(days[1]!.entries.every((e) => e.at.startsWith(yesterday.toISOString().slice(0, 10)))).toBe(true);
  // No client id, no recipient id, no reason code.
  for (const raw of ['ad-pipeline', 'test-pipeline', 'acme-ads', 'no_consent', 'System:']) {
    expect(page.body).not.toContain(raw);
  }
  // Headings in order: one h1, then a h2 per day.
  expect([...page.body.matchAll(/<h(\d)/g)].map((m) => m[1])).toEqual(['1', '2', '2']);
  // The filter: links that work without script, the current one marked.
  const filterOf = (html: string) =>
    [.../<nav class="filter"[\s\S]*?<\/nav>/.exec(html)![0].matchAll(/<a ([^>]+)>([^<]+)</g)].map((m) => [m[2], m[1]]);
  expect(filterOf(page.body)).toEqual([
    ['Everything', 'href="/activity" aria-current="true"'],
    ['Only what we allowed', 'href="/activity?outcome=allowed"'],
    ['Only what we refused', 'href="/activity?outcome=refused"'],
  ]);

  const refused = await client.get('/activity?outcome=refused');
  expect(filterOf(refused.body)).toEqual([
    ['Everything', 'href="/activity"'],
    ['Only what we allowed', 'href="/activity?outcome=allowed"'],
    ['Only what we refused', 'href="/activity?outcome=refused" aria-current="true"'],
  ]);
  const r = activityOf(refused.body);
  expect(r.map((d) => [d.day, d.entries.map((e) => e.outcome)])).toEqual([
    [longDate(today), ['refused']],
    [longDate(yesterday), ['refused']],
  ]);
  const a = activityOf((await client.get('/activity?outcome=allowed')).body);
  expect(a.map((d) => [d.day, d.entries.map((e) => e.outcome)])).toEqual([
    [longDate(today), ['allowed']],
    [longDate(yesterday), ['allowed']],
  ]);
});

it('an account with nothing refused says so under that filter', async () => {
  const accountId = await createAccount(svc, admin);
  await decide(svc, unnamed, { accountId, purpose: 'fraud_protection', categories: ['ip_addresses'] });
  const client = await signedIn(accountId);
  const page = await client.get('/activity?outcome=refused');
  expect(page.status).toBe(200);
  expect(activityOf(page.body)).toEqual([]);
  expect(textOf(page.body)).toContain("We have not refused any system's request to use your data.");
  expect(textOf((await client.get('/activity')).body)).toContain('The law allows this without your permission.');
});

it(
  'the filter is applied to single and batch decisions alike and paginates: full pages until the last, in the ' +
    'order of the whole list, the filter kept in every link',
  async () => {
    const accountId = await createAccount(svc, admin);
    await putConsents(svc, admin, accountId, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
    const yes = { accountId, purpose: 'ad_targeting', categories: ['web_browsing_history'] };
    const no = { accountId, purpose: 'ad_targeting', categories: ['name'] };
    const batch = async (categories: string[], times: number) => {
      const r = await call(svc.url, 'POST', '/v1/decisions/batch', {
        token: named,
        body: { purpose: 'ad_targeting', categories, accountIds: Array(times).fill(accountId) },
      });
      expect(r.status).toBe(200);
    };
    // 30 allowed (20 of them in a batch) and 35 refused (15 in a batch), interleaved.
    for (let i = 0; i < 10; i++) {
      await decide(svc, named, no);
      await decide(svc, unnamed, yes);
    }
    await batch(['web_browsing_history'], 20);
    for (let i = 0; i < 5; i++) await decide(svc, unnamed, no);
    await batch(['health'], 15);
    for (let i = 0; i < 5; i++) await decide(svc, named, no);

    const client = await signedIn(accountId);
    const whole = await allPages(client, '/activity');
    expect(whole.map((p) => p.entries.length)).toEqual([25, 25, 15]);
    const everything = whole.flatMap((p) => p.entries);

    for (const outcome of ['allowed', 'refused'] as const) {
      const pages = await allPages(client, `/activity?outcome=${outcome}`);
      const total = outcome === 'allowed' ? 30 : 35;
      expect(pages.map((p) => p.entries.length)).toEqual([25, total - 25]);
      // The same entries, in the same order, as the whole list holds with that answer.
      expect(pages.flatMap((p) => p.entries)).toEqual(everything.filter((e) => e.outcome === outcome));
      // The older link keeps the filter; the second page links back to the filter's first.
      expect(pages[0]!.links).toEqual([expect.stringMatching(new RegExp(`^/activity\\?outcome=${outcome}&before=`))]);
      expect(pages[1]!.links).toEqual([`/activity?outcome=${outcome}`]);
    }
  },
);

it('a filter or cursor the page never offers is a 422 page, never a 500', async () => {
  const client = await signedIn(await createAccount(svc, admin));
  for (const target of [
    '/activity?outcome=maybe',
    '/activity?outcome=allow',
    '/activity?outcome=allowed&outcome=refused',
    '/activity?outcome=refused&before=bogus',
    '/activity?before=',
  ]) {
    const page = await client.get(target);
    expect({ target, status: page.status }).toEqual({ target, status: 422 });
    expect(textOf(page.body)).toContain('We could not read what you sent.');
    expect(page.body).not.toContain('maybe');
  }
  // Parameters the page does not use are ignored.
  expect((await client.get('/activity?accountId=A-1&utm_source=mail')).status).toBe(200);
});
