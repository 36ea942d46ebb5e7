import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  axeViolations,
  copyConfig,
  item as kindOf,
  launchBrowser,
  newContext,
  screenshot,
  scrollWidth,
  signInPage,
} from '../support/browser';
import { adminToken, createAccount, decide, putConsents, recipientFor } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * A material notice change, with a catalog of the test's own: v4 (in force since an hour ago) is
 * material for targeted advertising, v5 is announced for next month. Opt-ins for targeted
 * advertising given under v3 stop counting (notice_superseded) and the portal asks again.
 */

let svc: TestService;
let browser: Browser;
let admin: string;
let pipeline: string;
let configDir: string;
const v4At = new Date(Date.now() - 3_600_000);
const v5At = new Date(Date.now() + 30 * 86_400_000);
/** The service's clock runs this far behind real time while a test records what was given before v4. */
let behind = 0;

beforeAll(async () => {
  configDir = copyConfig();
  const catalogFile = path.join(configDir, 'catalog.json');
  const catalog = JSON.parse(readFileSync(catalogFile, 'utf8'));
  const v3Text = readFileSync(path.join(configDir, 'notices/v3.md'), 'utf8');
  writeFileSync(
    path.join(configDir, 'notices/v4.md'),
    `${v3Text}\n**What changed in this version.** We now use the websites you visit to choose ads from more ` +
      `partners. Because this matters, permissions you gave before for targeted advertising no longer count: we ` +
      `ask you again.\n`,
  );
  writeFileSync(path.join(configDir, 'notices/v5.md'), `${v3Text}\nA clarification, with no material change.\n`);
  catalog.notices.push(
    { version: 'v4', effectiveAt: v4At.toISOString(), file: 'notices/v4.md', materialFor: ['ad_targeting'] },
    { version: 'v5', effectiveAt: v5At.toISOString(), file: 'notices/v5.md', materialFor: [] },
  );
  writeFileSync(catalogFile, JSON.stringify(catalog, null, 2));

  svc = await startTestService(
    { CONFIG_DIR: configDir, PORTAL_SIGNIN_PER_MINUTE: '1000' },
    { clock: () => new Date(Date.now() - behind) },
  );
  admin = await adminToken(svc);
  pipeline = await svc.token('decisions', [...svc.config.catalog.purposes.keys()], { subject: 'ad-pipeline' });
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  rmSync(configDir, { recursive: true, force: true });
});

const reasonOf = async (accountId: string, purpose: string, category: string) => {
  const r = await decide(svc, pipeline, { accountId, purpose, categories: [category], ...recipientFor(svc, purpose) });
  expect(r.status).toBe(200);
  return r.body.results[0].reason as string;
};

const item = (page: Page, category: string) => kindOf(page, 'ad_targeting', category);

it('the test catalog is what the service runs: v4 in force, v5 announced', async () => {
  const notices = await call(svc.url, 'GET', '/v1/notices');
  expect(notices.body.current).toBe('v4');
  expect(notices.body.versions.map((v: { version: string }) => v.version)).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
});

it('opt-ins for the purpose stop counting, the portal asks again on the next visit, and allowing again under v4 ' +
  'counts', async () => {
  const accountId = await createAccount(svc, admin);
  // Recorded under v3 two hours ago, before v4 took effect.
  behind = 2 * 3_600_000;
  const put = await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    { purpose: 'ad_targeting', category: 'demographics', choice: 'grant' },
    { purpose: 'data_sale', category: 'name', choice: 'grant' },
  ]);
  behind = 0;
  expect(put.status).toBe(200);
  // Now that v4 is in force, a grant for targeted advertising under v3 is refused; one for sale is not (v4 is not
  // material for it).
  const late = await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
  ]);
  expect(late.status).toBe(422);
  expect(late.body.errors[0]).toMatchObject({ path: 'noticeVersion' });
  // And one under v4, after the change: it counts.
  expect(
    (
      await putConsents(svc, admin, accountId, [{ purpose: 'ad_targeting', category: 'health', choice: 'grant' }], {
        noticeVersion: 'v4',
      })
    ).status,
  ).toBe(200);
  // A notice not yet in force cannot have been shown.
  expect(
    (
      await putConsents(svc, admin, accountId, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }], {
        noticeVersion: 'v5',
      })
    ).status,
  ).toBe(422);

  expect(await reasonOf(accountId, 'ad_targeting', 'web_browsing_history')).toBe('notice_superseded');
  expect(await reasonOf(accountId, 'ad_targeting', 'demographics')).toBe('notice_superseded');
  expect(await reasonOf(accountId, 'ad_targeting', 'health')).toBe('consent_granted');
  // v4 is not material for sale: that opt-in stands.
  expect(await reasonOf(accountId, 'data_sale', 'name')).toBe('consent_granted');

  for (const width of [1280, 390]) {
    const context = await newContext(browser, width);
    const page = await context.newPage();
    try {
      await signInPage(svc, page, accountId);
      const banner = page.locator('main p.banner.warning[role=status]');
      expect(await banner.textContent()).toBe(
        'We changed our notice in a way that matters for: Targeted advertising. Permissions you gave before for ' +
          'these uses no longer count. Please choose again.',
      );
      expect(await page.getByText('These choices are made under notice version v4.').count()).toBe(1);
      for (const category of ['Websites you visit', 'Demographic information (such as age)']) {
        expect(await (await item(page, category)).locator('.status').textContent()).toBe(
          'Please choose again: our notice changed',
        );
        // Not pre-selected: the old opt-in is not this notice's answer.
        expect(await (await item(page, category)).locator('input:checked').count()).toBe(0);
      }
      expect(
        await (await item(page, 'Health information')).getByRole('radio', { name: 'Allow', exact: true }).isChecked(),
      ).toBe(true);
      expect(await axeViolations(page)).toEqual([]);
      expect(await scrollWidth(page)).toBeLessThanOrEqual(width);
      await screenshot(page, 'choices-ask-again');
    } finally {
      await context.close();
    }
  }

  // The subscriber agrees again to one: it counts, under v4. The other still asks.
  const context = await newContext(browser);
  const page = await context.newPage();
  try {
    await signInPage(svc, page, accountId);
    await (await item(page, 'Websites you visit')).getByRole('radio', { name: 'Allow', exact: true }).check();
    await page.getByRole('button', { name: 'Save my choices' }).first().click();
    await page.waitForURL('**/choices/saved');
    expect(await page.locator('ul.changes > li').count()).toBe(1);
    expect(await reasonOf(accountId, 'ad_targeting', 'web_browsing_history')).toBe('consent_granted');
    expect(await reasonOf(accountId, 'ad_targeting', 'demographics')).toBe('notice_superseded');
    const { rows } = await svc.sql.query(
      'select notice_version, notice_sha256, channel from consent_events where account_id = $1 and category = ' +
        "'web_browsing_history' order by id desc limit 1",
      [accountId],
    );
    expect(rows[0]).toEqual({
      notice_version: 'v4',
      notice_sha256: svc.config.catalog.noticesByVersion.get('v4')!.sha256,
      channel: 'portal',
    });

    await page.getByRole('link', { name: 'Back to my choices' }).click();
    expect(await page.locator('main p.banner.warning').count()).toBe(1);
    // Declining the other answers the question too: the banner goes.
    await (await item(page, 'Demographic information (such as age)'))
      .getByRole('radio', { name: "Don't allow", exact: true })
      .check();
    await page.getByRole('button', { name: 'Save my choices' }).first().click();
    await page.waitForURL('**/choices/saved');
    expect(await reasonOf(accountId, 'ad_targeting', 'demographics')).toBe('consent_revoked');
    await page.getByRole('link', { name: 'Back to my choices' }).click();
    expect(await page.locator('main p.banner.warning').count()).toBe(0);
  } finally {
    await context.close();
  }
}, 90_000);

it('the public notice pages: v4 in force and material for targeted advertising, v3 replaced, v5 ' +
  'announced', async () => {
  const context = await newContext(browser, 390);
  const page = await context.newPage();
  try {
    await page.goto(`${svc.url}/notice`);
    expect(await page.locator('.eyebrow').textContent()).toBe('Privacy notice, version v4');
    expect(await page.getByText('This is the notice in force.').count()).toBe(1);
    expect(((await page.locator('dl.facts').textContent()) ?? '').replace(/\s+/g, ' ')).toContain(
      'Material change for Targeted advertising',
    );
    expect(await page.getByText('What changed in this version.').count()).toBe(1);

    await page.goto(`${svc.url}/notice/v3`);
    expect(await page.getByText('This version has been replaced. Read the current notice.').count()).toBe(1);

    await page.goto(`${svc.url}/notice/v5`);
    const date = new Intl.DateTimeFormat('en', { dateStyle: 'long', timeZone: 'UTC' }).format(v5At);
    expect(await page.getByText(`This version takes effect on ${date}.`).count()).toBe(1);
    expect(await axeViolations(page)).toEqual([]);
    await screenshot(page, 'notice-upcoming');
  } finally {
    await context.close();
  }
}, 30_000);
