import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { copyConfig, PortalClient, signInUrl, textOf } from '../support/browser';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/**
 * Another language is a file: config/messages/fr.json with English's keys (here English prefixed
 * with "FR "), no code change. Every word a French page shows must come from that file.
 */

type Tree = { [key: string]: string | string[] | Tree };
const prefixed = (tree: Tree): Tree =>
  Object.fromEntries(
    Object.entries(tree).map(([k, v]) => [
      k,
      k.startsWith('$')
        ? v
        : typeof v === 'string'
          ? `FR ${v}`
          : Array.isArray(v)
            ? v.map((x) => `FR ${x}`)
            : prefixed(v),
    ]),
  );

let svc: TestService;
let configDir: string;
let admin: string;

beforeAll(async () => {
  configDir = copyConfig();
  const en = JSON.parse(readFileSync(path.join(configDir, 'messages/en.json'), 'utf8')) as Tree;
  writeFileSync(path.join(configDir, 'messages/fr.json'), JSON.stringify(prefixed(en), null, 2));
  svc = await startTestService({ CONFIG_DIR: configDir, PORTAL_SIGNIN_PER_MINUTE: '1000' });
  admin = await adminToken(svc);
});
afterAll(async () => {
  await svc?.stop();
  rmSync(configDir, { recursive: true, force: true });
});

const fr = { 'accept-language': 'fr-FR,fr;q=0.9,en;q=0.5' };

/**
 * Text a page shows that is not from the French file: each run of text between tags, and each
 * aria-label / data-label, must start with "FR " unless it is data (dates, ids, versions, hashes)
 * or punctuation.
 */
function untranslated(html: string, data: RegExp[]): string[] {
  const body = html.replace(/^[\s\S]*?<body>/, '');
  const runs = body
    .split(/<[^>]+>/)
    .map((t) => textOf(t))
    .filter((t) => t && !/^[\s:;,.()·\-–—]*$/.test(t));
  // An empty alt is a decorative image's, and says nothing.
  const attributes = [...body.matchAll(/(?:aria-label|data-label|title|alt|placeholder)="([^"]+)"/g)].map((m) =>
    textOf(m[1]!),
  );
  return [...runs, ...attributes].filter((t) => !t.startsWith('FR ') && !data.some((d) => d.test(t)));
}

/** The ISP's names and contacts (config/brand.json) are data, the same in every language. */
function brandData(): RegExp[] {
  const { brand } = svc.config;
  const exact = (text: string) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return [brand.name, brand.contact.phone, brand.contact.email, brand.contact.address.join(', ')].map(exact);
}

/** Recipients' legal names are data: one or more, joined by "; ". */
function recipientNames(): RegExp {
  const names = [...svc.config.catalog.recipients.values()].map((r) =>
    r.legalName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
  );
  const one = `(?:${names.join('|')})`;
  return new RegExp(`^${one}(?:; ${one})*$`);
}

const FRENCH_MONTHS = 'janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre';
const FRENCH_DATE = new RegExp(`^\\d{1,2}(er)? (${FRENCH_MONTHS}) \\d{4}( à \\d{2}:\\d{2})?( UTC)?$`);
const FRENCH_SHORT_DATE = /^\d{1,2} [a-zéû]+\.? \d{4}(,| à) \d{2}:\d{2} UTC$/;

it(
  'Accept-Language: fr gets the French file, <html lang="fr"> and French dates; other languages get ' + 'English',
  async () => {
    const client = new PortalClient(svc.url, fr);
    const landing = await client.get('/');
    expect(landing.status).toBe(200);
    expect(landing.body).toContain('<html lang="fr">');
    expect(textOf(landing.body)).toContain('FR Your privacy choices');
    expect(textOf(landing.body)).toContain('FR Read our privacy notice, including every earlier version.');
    expect(untranslated(landing.body, brandData())).toEqual([]);

    const notice = await client.get('/notice/v1');
    expect(notice.body).toContain('<html lang="fr">');
    expect(textOf(notice.body)).toContain('FR In effect from 1 juillet 2020');
    // The notice text itself is the ISP's document (config/notices), not a portal message: it is not checked here.
    const noticeChrome = notice.body.replace(/<article class="notice">[\s\S]*?<\/article>/, '');
    expect(untranslated(noticeChrome, [...brandData(), FRENCH_DATE, /^[0-9a-f]{64}$/])).toEqual([]);

    for (const language of ['de', 'en-GB', '']) {
      const other = await new PortalClient(svc.url, language ? { 'accept-language': language } : {}).get('/');
      expect(other.body).toContain('<html lang="en">');
      expect(textOf(other.body)).toContain('Your privacy choices');
      expect(textOf(other.body)).not.toContain('FR ');
    }
    // English still preferred when the browser says so.
    const en = await new PortalClient(svc.url, { 'accept-language': 'en;q=1, fr;q=0.5' }).get('/');
    expect(en.body).toContain('<html lang="en">');
  },
);

it('every signed-in page in French shows only words from the French file', async () => {
  const accountId = await createAccount(svc, admin);
  await putConsents(svc, admin, accountId, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
  const pipeline = await svc.token('decisions', ['ad_targeting', 'fraud_protection']);
  await decide(svc, pipeline, { accountId, purpose: 'ad_targeting', categories: ['name', 'health'] });
  await decide(svc, pipeline, { accountId, purpose: 'fraud_protection', categories: ['ip_addresses'] });

  const client = new PortalClient(svc.url, fr);
  await client.signIn(await signInUrl(svc, accountId));
  const csrf = await client.csrf();
  await client.post('/choices', {
    _csrf: csrf,
    noticeVersion: 'v3',
    action: 'save',
    'c:data_sale:name': 'allow',
    'c:data_sale:ssn': 'deny',
  });

  const saved = await client.get('/choices/saved');
  const receipt = /href="(\/receipts\/[0-9a-f-]{36})"/.exec(saved.body)![1]!;
  // The receipt records the language the choice was made in.
  expect(JSON.parse((await client.get(`${receipt}/receipt.json`)).body)).toMatchObject({ language: 'fr' });
  const data = [
    FRENCH_DATE,
    FRENCH_SHORT_DATE,
    /^\d{2}:\d{2} UTC$/, // the time of an activity entry, under its day
    new RegExp(`^${accountId}$`),
    /^v\d$/,
    /^[0-9a-f]{64}$/,
    /^[0-9a-f-]{36}$/, // event ids, for screen readers next to "view"
    /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, // the JWS itself
    /^test-pipeline$/, // the pipeline's client id
    recipientNames(), // recipients' legal names, from the registry
    ...brandData(),
  ];
  for (const target of ['/choices', '/choices/saved', '/history', '/activity', receipt, '/login?token=bad']) {
    const page = await client.get(target);
    expect({ target, status: page.status }).toEqual({ target, status: target.startsWith('/login') ? 401 : 200 });
    expect(page.body).toContain('<html lang="fr">');
    expect({ target, untranslated: untranslated(page.body, data) }).toEqual({ target, untranslated: [] });
  }
  // Forms keep working in French: sign out.
  const out = await client.post('/logout', { _csrf: csrf });
  expect(out.location).toBe('/?signedOut=1');
  expect(textOf((await client.get(out.location!)).body)).toContain('FR You are signed out.');
});

it('the 404 page of an unknown address is in French too', async () => {
  const page = await new PortalClient(svc.url, fr).get('/no-such-page');
  expect(page.status).toBe(404);
  expect(page.body).toContain('<html lang="fr">');
  expect(textOf(page.body)).toContain('FR There is nothing at this address.');
});

it('a 404 inside a portal page (an unknown notice version) is in French', async () => {
  const page = await new PortalClient(svc.url, fr).get('/notice/v99');
  expect(page.status).toBe(404);
  expect(page.body).toContain('<html lang="fr">');
  expect(textOf(page.body)).toContain('FR There is nothing at this address.');
});

it('a language file missing a key stops the start, naming the key', async () => {
  const broken = copyConfig();
  try {
    const en = JSON.parse(readFileSync(path.join(broken, 'messages/en.json'), 'utf8')) as Tree;
    const partial = prefixed(en);
    delete (partial.choices as Tree).allow;
    writeFileSync(path.join(broken, 'messages/fr.json'), JSON.stringify(partial));
    await expect(startTestService({ CONFIG_DIR: broken })).rejects.toThrow(/fr\.json: choices\.allow: missing/);
  } finally {
    rmSync(broken, { recursive: true, force: true });
  }
});
