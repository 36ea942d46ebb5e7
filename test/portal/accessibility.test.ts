import type { Browser } from 'playwright-core';
import {
  accessibleRoles,
  allowOf,
  axeViolations,
  denyOf,
  item,
  launchBrowser,
  newContext,
  screenshot,
  scrollWidth,
  signInPage,
} from '../support/browser';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

// Functions handed to page.evaluate run in Chromium; the project compiles without the DOM library.
declare const document: any;

/**
 * Every page of the portal, signed out and signed in, at 1280 and 390 px: zero axe-core violations
 * (wcag2a, wcag2aa, wcag21a, wcag21aa), nothing wider than the window, one h1, a language; a full-page screenshot of
 * each in test-output/screenshots (git-ignored) for a person to look at.
 */

let svc: TestService;
let browser: Browser;
let admin: string;
let pipeline: string;

beforeAll(async () => {
  svc = await startTestService({ PORTAL_SIGNIN_PER_MINUTE: '1000' });
  admin = await adminToken(svc);
  pipeline = await svc.token('decisions', [...svc.config.catalog.purposes.keys()], { subject: 'ad-pipeline' });
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
});

/** The choices page's height, closed and opened, for the closing note. */
const heights: Record<string, number> = {};
afterAll(() => console.log(`choices page heights (px): ${JSON.stringify(heights)}`));

describe('every page: axe-core (wcag2a, wcag2aa, wcag21a, wcag21aa) clean, no sideways scroll, a screenshot', () => {
  for (const width of [1280, 390]) {
    it(`at ${width} px`, async () => {
      const accountId = await createAccount(svc, admin);
      // Some history from another channel, and pipeline activity, so that the tables have rows.
      await putConsents(svc, admin, accountId, [
        { purpose: 'data_sale', category: 'financial', choice: 'grant' },
        {
          purpose: 'ad_targeting',
          category: 'demographics',
          choice: 'grant',
          expiresAt: new Date(Date.now() + 10 * 86_400_000).toISOString(),
        },
      ]);
      await decide(svc, pipeline, {
        accountId,
        purpose: 'data_sale',
        recipient: 'acme-ads',
        categories: ['financial', 'health'],
      });
      await decide(svc, pipeline, { accountId, purpose: 'ad_targeting', categories: ['demographics'] });

      const context = await newContext(browser, width);
      const page = await context.newPage();
      const report: Record<string, unknown> = {};
      const check = async (name: string, expected: { status?: number; h1?: RegExp } = {}) => {
        const violations = await axeViolations(page);
        if (violations.length) report[name] = violations;
        const sw = await scrollWidth(page);
        if (sw > width) report[`${name}: scrollWidth`] = sw;
        // Every page has one h1 and a language.
        expect(await page.locator('h1').count()).toBe(1);
        expect(await page.getAttribute('html', 'lang')).toBe('en');
        if (expected.h1) expect(await page.locator('h1').textContent()).toMatch(expected.h1);
        await screenshot(page, name);
      };
      const visit = async (path: string, name: string, expected: { status?: number; h1?: RegExp } = {}) => {
        const res = await page.goto(svc.url + path);
        expect(res?.status()).toBe(expected.status ?? 200);
        await check(name, expected);
      };
      try {
        await visit('/', 'landing', { h1: /^Your privacy choices$/ });
        await visit('/notice', 'notice', { h1: /^Your privacy choices$/ });
        await visit('/notice/v1', 'notice-v1');
        await visit('/no-such-page', 'not-found', { status: 404, h1: /^Something went wrong$/ });
        await visit('/login?token=not.a.token', 'sign-in-refused', { status: 401, h1: /^Sign in$/ });

        await signInPage(svc, page, accountId);
        // The choices page is checked once below, when it shows every kind of state (chosen, expiring, declined).
        await allowOf(await item(page, 'ad_targeting', 'Websites you visit')).check();
        await denyOf(await item(page, 'data_sale', 'Health information')).check();
        await page.getByRole('button', { name: 'Save my choices' }).first().click();
        await page.waitForURL('**/choices/saved');
        await check('confirmation', { h1: /^Your choices are saved$/ });
        await page
          .getByRole('link', { name: /^Receipt / })
          .first()
          .click();
        await page.waitForURL(/\/receipts\//);
        await check('receipt', { h1: /^Receipt / });
        await visit('/history', 'history', { h1: /^History and receipts$/ });
        // At 390 px the rows are laid out as cards: Chromium must still expose a table with headers and cells.
        const roles = await accessibleRoles(page);
        expect(roles.table).toBe(1);
        // Two acts (the call, the save), one row each.
        expect(roles.columnheader).toBe(4);
        expect(roles.cell).toBe(2 * 4);
        await visit('/activity', 'activity', { h1: /^Who used my data$/ });
        // The pipeline's two questions, newest first, each a sentence with the answer and the reason.
        const rows = (await page.locator('li.entry').allInnerTexts()).map((t) => t.replace(/\s+/g, ' '));
        expect(rows).toHaveLength(2);
        expect(rows[0]).toMatch(/^Allowed \S+ [AP]M UTC /);
        expect(rows[0]).toContain(
          'Our advertising system asked to use “Demographic information (such as age)” for “Targeted advertising”, ' +
            'and we allowed it. You had allowed this.',
        );
        expect(rows[1]).toMatch(/^Refused \S+ [AP]M UTC /);
        expect(rows[1]).toContain(
          'Our advertising system asked to share “Financial information” and “Health information” with ' +
            'Acme Advertising LLC for “Selling your data”, and we refused. You had not allowed this.',
        );
        await visit('/activity?outcome=refused', 'activity-refused', { h1: /^Who used my data$/ });
        expect(await page.locator('li.entry').count()).toBe(1);
        await visit('/receipts/00000000-0000-4000-8000-000000000000', 'receipt-not-found', { status: 404 });
        await visit('/choices', 'choices', { h1: /^My choices$/ });
        expect(await page.locator('input[type=radio]:checked').count()).toBe(4);
        expect(await page.locator('.item .status-allowed').count()).toBe(3);
        expect(await page.locator('.status-soon').count()).toBe(1);
        // Purpose first: one card per purpose, the kinds of information on demand. The page a subscriber first sees
        // is at most 4,000 px tall on a phone.
        const height = await page.evaluate(() => document.documentElement.scrollHeight);
        heights[`choices at ${width}`] = height;
        if (width === 390) expect(height).toBeLessThanOrEqual(4000);
        // Every "Choose per kind of information" opened: still clean.
        for (const summary of await page.locator('details.kinds > summary').all()) await summary.click();
        expect(await page.locator('details.kinds[open]').count()).toBe(svc.config.catalog.purposes.size);
        heights[`choices opened at ${width}`] = await page.evaluate(() => document.documentElement.scrollHeight);
        await check('choices-opened');
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.waitForURL('**/?signedOut=1');
        await check('signed-out', { h1: /^Your privacy choices$/ });
        expect(await page.getByText('You are signed out.').count()).toBe(1);
        await visit('/history', 'session-ended');
        expect(new URL(page.url()).search).toBe('?ended=1');
        expect(await page.getByText('Your session ended. Sign in again to continue.').count()).toBe(1);
        expect(report).toEqual({});
      } finally {
        await context.close();
      }
    }, 120_000);
  }
});
