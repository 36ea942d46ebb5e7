import type { Browser } from 'playwright-core';
import {
  allowOf,
  axeViolations,
  denyOf,
  focusStyle,
  item,
  launchBrowser,
  newContext,
  purposeCard,
  screenshot,
  scrollWidth,
  signInPage,
  signInUrl,
  wholePurpose,
} from '../support/browser';
import { adminToken, createAccount, decide, putConsents, recipientFor } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

// Functions handed to page.evaluate run in Chromium. The project compiles without the DOM library,
// so the few browser globals they use are declared here, for this module only.
declare const document: any;
declare function getComputedStyle(el: any): any;

/**
 * The portal in the system Chromium: a subscriber signs in with a portal link, chooses, saves,
 * revokes; keyboard only; without JavaScript; Global Privacy Control. Pipelines' answers are
 * checked through POST /v1/decisions.
 */

let svc: TestService;
let browser: Browser;
let admin: string;
let pipeline: string;

beforeAll(async () => {
  // Many sign-ins from one address in a minute: the limit itself is tested in sessions.test.ts.
  svc = await startTestService({ PORTAL_SIGNIN_PER_MINUTE: '1000' });
  admin = await adminToken(svc);
  pipeline = await svc.token('decisions', [...svc.config.catalog.purposes.keys()], { subject: 'ad-pipeline' });
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
});

async function decision(accountId: string, purpose: string, categories: string[]) {
  const r = await decide(svc, pipeline, { accountId, purpose, categories, ...recipientFor(svc, purpose) });
  expect(r.status).toBe(200);
  return r.body as { allow: boolean; results: { category: string; allow: boolean; reason: string }[] };
}

describe('choosing in the browser', () => {
  it('signs in with a portal link, opts in to two items (pipelines are then allowed), revokes everything (then ' +
    'denied)', async () => {
    const accountId = await createAccount(svc, admin);
    const context = await newContext(browser);
    const page = await context.newPage();
    try {
      await signInPage(svc, page, accountId);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('My choices');
      expect(await page.getByText(`Signed in as account ${accountId}`).count()).toBe(1);

      // Before: both denied, for lack of consent.
      expect((await decision(accountId, 'ad_targeting', ['web_browsing_history'])).results[0]!.reason).toBe(
        'no_consent',
      );

      await allowOf(await item(page, 'ad_targeting', 'Websites you visit')).check();
      await allowOf(await item(page, 'product_analytics', 'Apps you use')).check();
      await page.getByRole('button', { name: 'Save my choices' }).first().click();
      await page.waitForURL('**/choices/saved');

      // The confirmation says exactly what changed, with its one receipt.
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Your choices are saved');
      const changes = page.locator('ul.changes > li');
      expect(await changes.count()).toBe(2);
      const texts = (await changes.allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim());
      expect(texts[0]).toMatch(
        /^Targeted advertising: Websites you visit You allowed it \(allowed until \w+ \d{1,2}, \d{4}\)$/,
      );
      expect(texts[1]).toMatch(
        /^Improving our products: Apps you use You allowed it \(allowed until \w+ \d{1,2}, \d{4}\)$/,
      );
      expect(await page.getByRole('link', { name: /^Receipt / }).count()).toBe(1);

      const ad = await decision(accountId, 'ad_targeting', ['web_browsing_history']);
      expect(ad).toMatchObject({
        allow: true,
        results: [{ category: 'web_browsing_history', allow: true, reason: 'consent_granted' }],
      });
      const analytics = await decision(accountId, 'product_analytics', ['app_usage_history']);
      expect(analytics).toMatchObject({ allow: true, results: [{ reason: 'consent_granted' }] });
      // Nothing else was granted along the way.
      expect((await decision(accountId, 'ad_targeting', ['app_usage_history'])).allow).toBe(false);
      expect((await decision(accountId, 'product_analytics', ['web_browsing_history'])).allow).toBe(false);

      // The events were recorded as portal events, under the notice shown, with hashed evidence.
      const { rows } = await svc.sql.query(
        'select purpose, category, kind, channel, actor_type, client_id, notice_version, request_id, ip_hash, ' +
          'user_agent_hash from consent_events where account_id = $1 order by id',
        [accountId],
      );
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        expect(row).toMatchObject({
          kind: 'granted',
          channel: 'portal',
          actor_type: 'subscriber',
          client_id: 'portal',
          notice_version: 'v3',
        });
        expect(row.request_id).toMatch(/^[0-9a-f-]{36}$/);
        expect(row.ip_hash).toMatch(/^[0-9a-f]{64}$/);
        expect(row.user_agent_hash).toMatch(/^[0-9a-f]{64}$/);
      }

      // Back on the page, the two choices stand and show their expiry.
      await page.getByRole('link', { name: 'Back to my choices' }).click();
      const web = await item(page, 'ad_targeting', 'Websites you visit');
      expect(await allowOf(web).isChecked()).toBe(true);
      expect(await web.locator('.status').textContent()).toMatch(/^Allowed until \w+ \d{1,2}, \d{4}$/);
      expect(await page.locator('input[type=radio]:checked').count()).toBe(2);

      // One step takes everything back.
      await page.getByRole('button', { name: 'Turn everything off' }).click();
      await page.waitForURL('**/choices/saved');
      const revoked = (await page.locator('ul.changes > li').allTextContents()).map((t) =>
        t.replace(/\s+/g, ' ').trim(),
      );
      expect(revoked.filter((t) => /You took it back/.test(t))).toHaveLength(2);
      // …and the opt-out category is opted out for every purpose.
      expect(
        revoked.filter((t) => /Other information about your account \(not personal\) You said no/.test(t)),
      ).toHaveLength(5);
      expect(revoked).toHaveLength(7);

      expect(await decision(accountId, 'ad_targeting', ['web_browsing_history'])).toMatchObject({
        allow: false,
        results: [{ reason: 'consent_revoked' }],
      });
      expect(await decision(accountId, 'product_analytics', ['app_usage_history'])).toMatchObject({
        allow: false,
        results: [{ reason: 'consent_revoked' }],
      });
      expect(await decision(accountId, 'product_analytics', ['other_customer_info'])).toMatchObject({
        allow: false,
        results: [{ reason: 'opted_out' }],
      });

      await page.getByRole('link', { name: 'Back to my choices' }).click();
      expect(await denyOf(await item(page, 'ad_targeting', 'Websites you visit')).isChecked()).toBe(true);
      expect(await (await item(page, 'ad_targeting', 'Websites you visit')).locator('.status').textContent()).toBe(
        'Not allowed: you took this permission back',
      );
    } finally {
      await context.close();
    }
  }, 60_000);

  it("nothing is pre-selected for a fresh account, and allow / don't allow are equally prominent at 1280 and 390 " +
    'px', async () => {
    const accountId = await createAccount(svc, admin);
    for (const width of [1280, 390]) {
      const context = await newContext(browser, width);
      const page = await context.newPage();
      try {
        await signInPage(svc, page, accountId);
        // One choice per purpose, and one per kind of information that purpose asks for (and only those).
        const radios = page.locator('input[type=radio]');
        const purposes = [...svc.config.catalog.purposes.values()];
        const items = purposes.reduce((n, p) => n + p.categories.length, 0);
        expect(await radios.count()).toBe(2 * (purposes.length + items));
        expect(await page.locator('input[type=radio]:checked').count()).toBe(0);
        expect(await page.locator('input[type=checkbox]').count()).toBe(0);
        expect(await page.locator('input[name="c:ad_targeting:ssn"]').count()).toBe(0);
        // The kinds are on demand: every "Choose per kind of information" starts closed, and opens.
        expect(await page.locator('details.kinds[open]').count()).toBe(0);
        for (const summary of await page.locator('details.kinds > summary').all()) await summary.click();

        // Every purpose and item: a fieldset with a name, an Allow and a Don't allow of the same size, side by side.
        const sizes = await page.locator('fieldset.item, fieldset.whole').evaluateAll((sets) =>
          sets.map((set) => {
            const labels = [...set.querySelectorAll('label.choice')].map((l) => {
              const r = l.getBoundingClientRect();
              const s = getComputedStyle(l);
              return {
                w: r.width,
                h: r.height,
                top: r.top,
                font: `${s.fontWeight} ${s.fontSize}`,
                border: s.borderTopWidth + s.borderTopStyle + s.borderTopColor,
                bg: s.backgroundColor,
              };
            });
            return { legend: set.querySelector('legend')?.textContent, labels };
          }),
        );
        expect(sizes).toHaveLength(purposes.length + items);
        for (const { legend, labels } of sizes) {
          expect(legend).toBeTruthy();
          expect(labels).toHaveLength(2);
          const [allow, deny] = labels as [(typeof labels)[0], (typeof labels)[0]];
          expect(Math.abs(allow.w - deny.w)).toBeLessThanOrEqual(0.5);
          expect(Math.abs(allow.h - deny.h)).toBeLessThanOrEqual(0.5);
          expect(allow.top).toBe(deny.top);
          expect(allow.font).toBe(deny.font);
          expect(allow.border).toBe(deny.border);
          expect(allow.bg).toBe(deny.bg);
          expect(allow.h).toBeGreaterThanOrEqual(44);
        }

        // No bulk accept: nothing allows everything at once. Turning everything off is one step, on the first screen.
        expect(await page.getByRole('button', { name: /allow everything/i }).count()).toBe(0);
        await page.reload();
        const off = await page.getByRole('button', { name: 'Turn everything off' }).boundingBox();
        const viewport = page.viewportSize()!;
        expect(off!.y + off!.height).toBeLessThanOrEqual(viewport.height);

        // Every control has an accessible name.
        const unnamed = await page
          .locator('input:not([type=hidden]), button')
          .evaluateAll(
            (els) =>
              els.filter(
                (el) => !(el as any).labels?.length && !el.getAttribute('aria-label') && !(el.textContent ?? '').trim(),
              ).length,
          );
        expect(unnamed).toBe(0);
        expect(await scrollWidth(page)).toBeLessThanOrEqual(width);
      } finally {
        await context.close();
      }
    }
  }, 60_000);

  it('keyboard only: Tab to an item, Space to allow, Enter to save; every stop shows its focus; revoke-all by ' +
    'keyboard too', async () => {
    const accountId = await createAccount(svc, admin);
    const context = await newContext(browser);
    const page = await context.newPage();
    const invisible: unknown[] = [];
    /** Presses Tab until `target` is focused, checking that each stop on the way is visibly focused. */
    async function tabTo(target: (el: any) => boolean, limit = 400): Promise<number> {
      for (let presses = 1; presses <= limit; presses++) {
        await page.keyboard.press('Tab');
        const style = await focusStyle(page);
        if (style && !(style.focusVisible && (style.outlineStyle !== 'none' || style.boxShadow !== 'none')))
          invisible.push(style);
        const focused = await page.evaluateHandle(() => document.activeElement);
        const hit = await page.evaluate(target, focused);
        await focused.dispose();
        if (hit) return presses;
      }
      throw new Error('target never focused');
    }
    try {
      await page.goto(await signInUrl(svc, accountId));
      expect(new URL(page.url()).pathname).toBe('/choices');

      // The first stop is the skip link, visible when focused; Enter moves focus to the main content.
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to main content');
      const skip = await page.locator('a.skip').boundingBox();
      expect(skip!.x).toBeGreaterThanOrEqual(0);
      expect(skip!.y).toBeGreaterThanOrEqual(0);
      await page.keyboard.press('Enter');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('main');

      // A whole purpose: its own pair of radios.
      await tabTo((el) => el.getAttribute('name') === 'p:product_analytics' && el.getAttribute('value') === 'allow');
      await page.keyboard.press('Space');
      // One kind of information: open "Choose per kind of information" with Enter, then the item.
      // (Functions evaluated in the page: no closures.)
      await tabTo((el) => el.tagName === 'SUMMARY' && el.closest('#purpose-data_sale-card') !== null);
      await page.keyboard.press('Enter');
      await tabTo((el) => el.getAttribute('name') === 'c:data_sale:name' && el.getAttribute('value') === 'allow');
      await page.keyboard.press('Space');
      expect(await allowOf(await item(page, 'data_sale', 'Your name')).isChecked()).toBe(true);
      // A sensitive item, further down: only its own choice allows it.
      await tabTo((el) => el.tagName === 'SUMMARY' && el.closest('#purpose-third_party_disclosure-card') !== null);
      await page.keyboard.press('Enter');
      await tabTo(
        (el) =>
          el.getAttribute('name') === 'c:third_party_disclosure:financial' && el.getAttribute('value') === 'allow',
      );
      await page.keyboard.press('Space');
      // On to the Save button at the end of the form, and Enter.
      await tabTo((el) => el === [...document.querySelectorAll('button[value=save]')].at(-1));
      await Promise.all([page.waitForURL('**/choices/saved'), page.keyboard.press('Enter')]);
      expect(await page.locator('ul.changes > li').count()).toBe(6);

      expect(await decision(accountId, 'data_sale', ['name'])).toMatchObject({
        allow: true,
        results: [{ reason: 'consent_granted' }],
      });
      expect(await decision(accountId, 'third_party_disclosure', ['financial'])).toMatchObject({
        allow: true,
        results: [{ reason: 'consent_granted' }],
      });
      expect(await decision(accountId, 'product_analytics', ['app_usage_history', 'device_identifiers'])).toMatchObject(
        {
          allow: true,
        },
      );

      // A receipt link, by keyboard.
      await tabTo((el) => el.tagName === 'A' && el.getAttribute('href')?.startsWith('/receipts/') === true);
      await Promise.all([page.waitForURL(/\/receipts\/[0-9a-f-]{36}$/), page.keyboard.press('Enter')]);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toMatch(/^Receipt /);

      // Revoke everything, by keyboard.
      await page.goto(`${svc.url}/choices`);
      await tabTo((el) => el.textContent?.trim() === 'Turn everything off' && el.tagName === 'BUTTON');
      await Promise.all([page.waitForURL('**/choices/saved'), page.keyboard.press('Enter')]);
      expect(await decision(accountId, 'data_sale', ['name'])).toMatchObject({
        allow: false,
        results: [{ reason: 'consent_revoked' }],
      });

      // Sign out, by keyboard.
      await tabTo((el) => el.textContent?.trim() === 'Sign out');
      await Promise.all([page.waitForURL('**/?signedOut=1'), page.keyboard.press('Enter')]);
      expect(await page.getByText('You are signed out.').count()).toBe(1);

      expect(invisible).toEqual([]);
    } finally {
      await context.close();
    }
  }, 90_000);

  it('allowing a whole purpose allows the kinds it covers and never a sensitive one; a changed kind wins', async () => {
    const accountId = await createAccount(svc, admin);
    const context = await newContext(browser, 390);
    const page = await context.newPage();
    try {
      await signInPage(svc, page, accountId);
      const card = purposeCard(page, 'ad_targeting');
      expect(await card.locator('#purpose-ad_targeting-covers').textContent()).toBe(
        'Covers 6 kinds of information; never the 3 marked sensitive, which each need their own choice.',
      );
      await allowOf(wholePurpose(page, 'ad_targeting')).check();
      // One kind refused by its own choice: it wins over the purpose's.
      await denyOf(await item(page, 'ad_targeting', 'Apps you use')).check();
      await page.getByRole('button', { name: 'Save my choices' }).first().click();
      await page.waitForURL('**/choices/saved');

      const { catalog } = svc.config;
      const asked = catalog.purposes.get('ad_targeting')!.categories;
      for (const category of asked) {
        const { allow, results } = await decision(accountId, 'ad_targeting', [category]);
        const sensitive = catalog.sensitive.has(category);
        if (sensitive)
          expect({ category, allow, reason: results?.[0]?.reason }).toEqual({
            category,
            allow: false,
            reason: 'no_consent',
          });
        else if (category === 'app_usage_history') expect(results?.[0]?.reason).toBe('no_consent');
        else expect({ category, allow }).toEqual({ category, allow: true });
      }
      expect(asked.filter((c) => catalog.sensitive.has(c))).toEqual(['precise_geolocation', 'financial', 'health']);

      // The page says so: the purpose is allowed for 5 of 9, and each sensitive kind is marked and still not allowed.
      await page.goto(`${svc.url}/choices`);
      expect(await card.locator('#purpose-ad_targeting-status').textContent()).toBe(
        'Allowed for 5 of 9 kinds of information',
      );
      // Mixed: the purpose's own radios stand unchosen.
      expect(await wholePurpose(page, 'ad_targeting').locator('input:checked').count()).toBe(0);
      const health = await item(page, 'ad_targeting', 'Health information');
      expect(await health.locator('.badge').textContent()).toBe('Sensitive: allowed only by its own choice');
      expect(await health.locator('.status').textContent()).toBe('Not allowed: you have not chosen');

      // Refusing the whole purpose refuses everything it had, sensitive or not.
      await allowOf(health).check();
      await page.getByRole('button', { name: 'Save my choices' }).first().click();
      await page.waitForURL('**/choices/saved');
      expect((await decision(accountId, 'ad_targeting', ['health'])).allow).toBe(true);
      await page.goto(`${svc.url}/choices`);
      await denyOf(wholePurpose(page, 'ad_targeting')).check();
      await page.getByRole('button', { name: 'Save my choices' }).last().click();
      await page.waitForURL('**/choices/saved');
      for (const category of asked) expect((await decision(accountId, 'ad_targeting', [category])).allow).toBe(false);
      await page.goto(`${svc.url}/choices`);
      expect(await allowOf(wholePurpose(page, 'ad_targeting')).isChecked()).toBe(false);
      expect(await denyOf(wholePurpose(page, 'ad_targeting')).isChecked()).toBe(true);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('a session that ends while choosing keeps the selections: shown to confirm after signing in again', async () => {
    const accountId = await createAccount(svc, admin);
    const context = await newContext(browser, 390);
    const page = await context.newPage();
    try {
      await signInPage(svc, page, accountId);
      await allowOf(wholePurpose(page, 'product_analytics')).check();
      await allowOf(await item(page, 'data_sale', 'Your name')).check();
      // The session ends (here: its cookie is gone) before the subscriber saves.
      await context.clearCookies({ name: 'optgate_session' });
      const refused = page.waitForResponse((r) => r.url().endsWith('/choices') && r.request().method() === 'POST');
      await page.getByRole('button', { name: 'Save my choices' }).first().click();
      expect((await refused).status()).toBe(401);
      expect(await page.locator('main').textContent()).toContain(
        'Your session ended, so nothing was saved. Sign in again within 15 minutes',
      );
      const events = await svc.sql.query('select count(*)::int as n from consent_events where account_id = $1', [
        accountId,
      ]);
      expect(events.rows[0].n).toBe(0);

      await signInPage(svc, page, accountId);
      expect(await page.getByRole('alert').textContent()).toBe(
        'Your session had ended, so nothing was saved. The selections you made are below: check them and save again.',
      );
      expect(await allowOf(wholePurpose(page, 'product_analytics')).isChecked()).toBe(true);
      expect(await allowOf(await item(page, 'data_sale', 'Your name')).isChecked()).toBe(true);
      expect(await axeViolations(page)).toEqual([]);
      await screenshot(page, 'choices-kept');
      await page.getByRole('button', { name: 'Save my choices' }).first().click();
      await page.waitForURL('**/choices/saved');
      expect((await decision(accountId, 'data_sale', ['name'])).allow).toBe(true);
      expect((await decision(accountId, 'product_analytics', ['app_usage_history'])).allow).toBe(true);
      // Shown once: the next visit is the page as it stands.
      await page.goto(`${svc.url}/choices`);
      expect(await page.getByRole('alert').count()).toBe(0);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('works with JavaScript disabled: sign in, choose, save, see the receipt, sign out', async () => {
    const accountId = await createAccount(svc, admin);
    const context = await newContext(browser, 390, { javaScriptEnabled: false });
    const page = await context.newPage();
    try {
      await signInPage(svc, page, accountId);
      await allowOf(await item(page, 'ad_targeting', 'Your precise location')).check();
      await denyOf(await item(page, 'ad_targeting', 'Health information')).check();
      await page.getByRole('button', { name: 'Save my choices' }).last().click();
      await page.waitForURL('**/choices/saved');
      const changes = (await page.locator('ul.changes > li').allTextContents()).map((t) =>
        t.replace(/\s+/g, ' ').trim(),
      );
      expect(changes).toHaveLength(2);
      expect(changes[0]).toMatch(/^Targeted advertising: Your precise location You allowed it/);
      expect(changes[1]).toMatch(/^Targeted advertising: Health information You said no$/);
      await page
        .getByRole('link', { name: /^Receipt / })
        .first()
        .click();
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toMatch(/^Receipt of your choices, /);
      await page.getByRole('link', { name: 'History and receipts' }).click();
      // One save, one entry.
      expect(await page.locator('tbody tr').count()).toBe(1);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL('**/?signedOut=1');
      await page.goto(`${svc.url}/choices`);
      expect(new URL(page.url()).search).toBe('?ended=1');
      expect(await decision(accountId, 'ad_targeting', ['precise_geolocation'])).toMatchObject({ allow: true });
      expect(await decision(accountId, 'ad_targeting', ['health'])).toMatchObject({
        allow: false,
        results: [{ reason: 'no_consent' }],
      });
    } finally {
      await context.close();
    }
  }, 60_000);
});

describe('Global Privacy Control', () => {
  it('a standing opt-out: the first request with Sec-GPC: 1 takes back sale, disclosure, access and targeted ads and ' +
    'opts out; an explicit opt-in under the signal wins and is recorded so; later sessions restore and revoke ' +
    'nothing', async () => {
    const accountId = await createAccount(svc, admin);
    const put = await putConsents(svc, admin, accountId, [
      { purpose: 'data_sale', category: 'name', choice: 'grant' },
      { purpose: 'third_party_disclosure', category: 'web_browsing_history', choice: 'grant' },
      { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
      { purpose: 'product_analytics', category: 'app_usage_history', choice: 'grant' },
    ]);
    expect(put.status).toBe(200);
    const eventCount = async () =>
      (await svc.sql.query('select count(*)::int as n from consent_events where account_id = $1', [accountId])).rows[0]
        .n as number;

    const gpc = await newContext(browser, 390, { extraHTTPHeaders: { 'Sec-GPC': '1' } });
    const page = await gpc.newPage();
    try {
      await signInPage(svc, page, accountId);
      const banner = page.locator('main > p.banner[role=status]').first();
      // 5 opt-outs (the opt-out category, for each purpose) + 3 revocations (sale, disclosure, targeted ads).
      expect(await banner.textContent()).toMatch(
        /Global Privacy Control signal\. We treated it as a request to opt out: we recorded 8 change\(s\)/,
      );
      expect(await axeViolations(page)).toEqual([]);
      await screenshot(page, 'choices-gpc');

      for (const [purpose, category] of [
        ['data_sale', 'name'],
        ['third_party_disclosure', 'web_browsing_history'],
        ['ad_targeting', 'name'],
      ] as const) {
        expect(await decision(accountId, purpose, [category])).toMatchObject({
          allow: false,
          results: [{ reason: 'consent_revoked' }],
        });
      }
      for (const purpose of svc.config.catalog.purposes.keys()) {
        expect(await decision(accountId, purpose, ['other_customer_info'])).toMatchObject({
          allow: false,
          results: [{ reason: 'opted_out' }],
        });
      }
      // Improving the products is none of those uses: it stands.
      expect(await decision(accountId, 'product_analytics', ['app_usage_history'])).toMatchObject({ allow: true });
      expect(await (await item(page, 'data_sale', 'Your name')).locator('.status').textContent()).toBe(
        'Not allowed: you took this permission back',
      );
      expect(await svc.sql.query('select gpc_at from accounts where account_id = $1', [accountId])).toMatchObject({
        rows: [{ gpc_at: expect.any(Date) }],
      });

      // Later requests of the session: the signal is acknowledged, nothing more is recorded.
      await page.reload();
      expect(await page.locator('main > p.banner[role=status]').first().textContent()).toMatch(
        /^Your browser sends the Global Privacy Control signal/,
      );
      expect(await eventCount()).toBe(4 + 8);

      // The subscriber allows targeted ads again, the signal still present: the explicit act wins, recorded as such.
      await allowOf(await item(page, 'ad_targeting', 'Your name')).check();
      await page.getByRole('button', { name: 'Save my choices' }).first().click();
      await page.waitForURL('**/choices/saved');
      expect(await decision(accountId, 'ad_targeting', ['name'])).toMatchObject({ allow: true });
      const { rows: made } = await svc.sql.query(
        "select kind, actor_id, under_gpc from consent_events where account_id = $1 and kind = 'granted' " +
          'order by id desc limit 1',
        [accountId],
      );
      expect(made[0]).toEqual({ kind: 'granted', actor_id: null, under_gpc: true });
      await page.getByRole('link', { name: /^Receipt / }).click();
      expect(await page.locator('table.facts').textContent()).toContain('your choice wins over it');

      // The history says the browser did it; the activity page says when the signal was honoured.
      await page.goto(`${svc.url}/history`);
      const how = await page.locator('tbody tr td:nth-child(3)').allTextContents();
      // The signal honoured is one act: one entry, listing its eight changes.
      expect(how.filter((t) => t === 'Your browser (Global Privacy Control)')).toHaveLength(1);
      await page.goto(`${svc.url}/activity`);
      expect(await page.locator('main p.banner[role=note]').textContent()).toMatch(/We honoured it on /);
      expect(await axeViolations(page)).toEqual([]);
    } finally {
      await gpc.close();
    }

    // A new session with the signal: it was honoured before, so the explicit opt-in stands.
    const again = await newContext(browser, 1280, { extraHTTPHeaders: { 'Sec-GPC': '1' } });
    try {
      await signInPage(svc, await again.newPage(), accountId);
      expect(await decision(accountId, 'ad_targeting', ['name'])).toMatchObject({ allow: true });
      expect(await eventCount()).toBe(4 + 8 + 1);
    } finally {
      await again.close();
    }

    // A new session without the header: no banner, and nothing is restored.
    const plain = await newContext(browser);
    const page2 = await plain.newPage();
    try {
      await signInPage(svc, page2, accountId);
      expect(await page2.locator('main > p.banner').getByText('Global Privacy Control').count()).toBe(0);
      expect(await decision(accountId, 'data_sale', ['name'])).toMatchObject({
        allow: false,
        results: [{ reason: 'consent_revoked' }],
      });
      expect(await decision(accountId, 'product_analytics', ['other_customer_info'])).toMatchObject({
        allow: false,
        results: [{ reason: 'opted_out' }],
      });
      expect(await eventCount()).toBe(4 + 8 + 1);
    } finally {
      await plain.close();
    }

    // The site says it honours GPC.
    const wellKnown = await call(svc.url, 'GET', '/.well-known/gpc.json');
    expect(wellKnown.status).toBe(200);
    expect(wellKnown.body).toEqual({ gpc: true, lastUpdate: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
  }, 90_000);
});
