import type { Browser, Page } from 'playwright-core';
import { checkpointAtHead, http } from '../support/audit';
import {
  axeViolations,
  launchBrowser,
  newContext,
  screenshot,
  scrollWidth,
  signInPage,
  WIDTHS,
} from '../support/browser';
import { staffSignInPage } from '../support/console';
import { adminToken, createAccount, decide, putConsents, uniqueId } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/**
 * The account timeline in a real Chromium: found and read with the keyboard only and no JavaScript, at 1280 and 390
 * px; axe finds nothing on the timeline, record and receipt pages; nothing scrolls sideways on a phone.
 */

let svc: TestService;
let browser: Browser;
let accountId: string;

beforeAll(async () => {
  svc = await startTestService({
    RUN_WORKERS: 'true',
    AUDIT_CHECKPOINT_INTERVAL_MS: '200',
    CONSOLE_SIGNIN_PER_MINUTE: '1000',
    PORTAL_SIGNIN_PER_MINUTE: '1000',
  });
  browser = await launchBrowser();
  const admin = await adminToken(svc);
  const purposes = [...svc.config.catalog.purposes.keys(), ...svc.config.catalog.exceptions.keys()];
  const pipeline = await svc.token('decisions', purposes, { subject: 'ad-pipeline' });
  accountId = await createAccount(svc, admin);
  const put = await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
  expect(put.status).toBe(200);
  await decide(svc, pipeline, { accountId, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
  await decide(svc, pipeline, {
    accountId,
    purpose: 'data_sale',
    recipient: 'acme-ads',
    categories: ['financial'],
  });
  await http(svc.url, 'POST', '/v1/audit/exports', admin, { format: 'ndjson', accountId });
  await checkpointAtHead(svc.sql);
}, 90_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
});

/** Presses Tab until the element matching `selector` has the focus. */
async function tabTo(page: Page, selector: string, limit = 40): Promise<number> {
  for (let presses = 1; presses <= limit; presses++) {
    await page.keyboard.press('Tab');
    if ((await page.locator(`${selector}:focus`).count()) === 1) return presses;
  }
  throw new Error(`${selector} never focused`);
}

describe.each(WIDTHS)('at %i px', (width) => {
  it('keyboard only, no JavaScript: sign in, find the account, read its timeline, open a record', async () => {
    const context = await newContext(browser, width, { javaScriptEnabled: false });
    const page = await context.newPage();
    try {
      await staffSignInPage(svc, page, uniqueId('kim'), 'compliance');
      await tabTo(page, '#account');
      await page.keyboard.type(accountId);
      await page.keyboard.press('Enter');
      await page.waitForURL(`**/console/accounts/${accountId}`);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(`Account ${accountId}`);
      const rows = page.locator('ol.timeline > li');
      // Four records of the account (a consent event, two decisions, an export), and earlier tests' views.
      const kinds = (await rows.locator('.kind').allTextContents()).map((k) => k.trim());
      expect(kinds.filter((k) => k !== 'Viewed in the console')).toEqual([
        'Export',
        'Decision: refused',
        'Decision: allowed',
        'Consent event: granted',
      ]);
      await screenshot(page, 'console-timeline');

      // The filter form, by keyboard: decisions only.
      await tabTo(page, '#kind');
      await page.keyboard.press('ArrowDown');
      await page.keyboard.press('ArrowDown');
      await tabTo(page, 'form.timeline-filters button');
      await page.keyboard.press('Enter');
      await page.waitForURL('**?kind=decision**');
      expect(await rows.count()).toBe(2);

      // A row's record, by keyboard.
      await tabTo(page, 'ol.timeline > li:first-child a[href^="/console/records/"]', 80);
      await page.keyboard.press('Enter');
      await page.waitForURL('**/console/records/*');
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toMatch(/^Audit record \d+$/);
      expect(await page.getByRole('link', { name: 'Download the inclusion proof' }).count()).toBe(1);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('axe finds nothing on the timeline, record and receipt pages, and nothing scrolls sideways', async () => {
    const context = await newContext(browser, width);
    const page = await context.newPage();
    try {
      await staffSignInPage(svc, page, uniqueId('lee'), 'compliance');
      await page.goto(`${svc.url}/console/accounts/${accountId}`);
      const record = await page.locator('ol.timeline a[href^="/console/records/"]').last().getAttribute('href');
      const receipt = await page.locator('ol.timeline a[href*="/receipts/"]').first().getAttribute('href');
      for (const target of [`/console/accounts/${accountId}`, record!, receipt!]) {
        const res = await page.goto(svc.url + target);
        expect([target, res?.status()]).toEqual([target, 200]);
        expect([target, await axeViolations(page)]).toEqual([target, []]);
        expect([target, (await scrollWidth(page)) <= width]).toEqual([target, true]);
        if (target === record && width === 1280) await screenshot(page, 'console-record');
      }
    } finally {
      await context.close();
    }
  }, 60_000);
});

it("the subscriber's activity page shows customer support's view, axe-clean at 390 px", async () => {
  const support = await newContext(browser, 1280, { javaScriptEnabled: false });
  const staffPage = await support.newPage();
  try {
    await staffSignInPage(svc, staffPage, uniqueId('sam'), 'support');
    await staffPage.getByLabel('Account id').fill(accountId);
    await staffPage.getByLabel('Ticket reference').fill('T-123');
    await staffPage.getByRole('button', { name: 'Open the account' }).click();
    await staffPage.waitForURL(`**/console/accounts/${accountId}`);
  } finally {
    await support.close();
  }
  const context = await newContext(browser, 390);
  const page = await context.newPage();
  try {
    await signInPage(svc, page, accountId);
    await page.goto(`${svc.url}/activity`);
    expect(await page.locator('.staff-views li').allTextContents()).toContainEqual(
      expect.stringMatching(/^Viewed by customer support on .+, ticket T-123\.$/),
    );
    expect(await axeViolations(page)).toEqual([]);
    expect(await scrollWidth(page)).toBeLessThanOrEqual(390);
    await screenshot(page, 'portal-activity-viewed-by-support');
  } finally {
    await context.close();
  }
}, 60_000);
