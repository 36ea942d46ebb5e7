import type { Browser, Page } from 'playwright-core';
import {
  axeViolations,
  launchBrowser,
  newContext,
  screenshot,
  scrollWidth,
  signInPage,
  WIDTHS,
} from '../support/browser';
import { staffActions, staffSignInPage } from '../support/console';
import { adminToken, createAccount } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/**
 * The console's own pages in the system Chromium, keyboard only and without JavaScript: sign in with a staff link,
 * find an account, support's ticket gate; axe on every page of the foundation (home, ticket, sign-in problems, 403).
 */

let svc: TestService;
let browser: Browser;
let admin: string;

beforeAll(async () => {
  svc = await startTestService({ CONSOLE_SIGNIN_PER_MINUTE: '1000', PORTAL_SIGNIN_PER_MINUTE: '1000' });
  admin = await adminToken(svc);
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
});

/** Presses Tab until the focused element matches, as a keyboard user would (at most 30 stops). */
async function tabTo(page: Page, selector: string): Promise<void> {
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => (globalThis as any).document.activeElement?.matches(s), selector)) return;
  }
  throw new Error(`no keyboard stop matches ${selector}`);
}

describe.each(WIDTHS)('at %i px, without JavaScript', (width) => {
  it('compliance signs in with a staff link and finds an account with the keyboard only', async () => {
    const accountId = await createAccount(svc, admin);
    const context = await newContext(browser, width, { javaScriptEnabled: false });
    const page = await context.newPage();
    try {
      await staffSignInPage(svc, page, `kim-${width}`, 'compliance');
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Accounts');
      await tabTo(page, 'input#account');
      await page.keyboard.type(accountId);
      await page.keyboard.press('Enter');
      await page.waitForURL(`**/console/accounts/${accountId}`);
      expect(await scrollWidth(page)).toBeLessThanOrEqual(width);

      // An account that does not exist: said so, on the same page, with the search kept.
      await page.goto(`${svc.url}/console`);
      await tabTo(page, 'input#account');
      await page.keyboard.type('A-no-such-account');
      await page.keyboard.press('Enter');
      await page.waitForURL('**/console/accounts?account=A-no-such-account');
      expect(await page.getByRole('status').textContent()).toContain('There is no account A-no-such-account');
    } finally {
      await context.close();
    }
  }, 60_000);

  it('support sees no account data until it gives the ticket reference, then only that account', async () => {
    const accountId = await createAccount(svc, admin);
    const other = await createAccount(svc, admin);
    const context = await newContext(browser, width, { javaScriptEnabled: false });
    const page = await context.newPage();
    const sub = `sam-${width}`;
    try {
      await staffSignInPage(svc, page, sub, 'support');
      // Straight to an account: the ticket form, 403, nothing of the account.
      const refused = await page.goto(`${svc.url}/console/accounts/${accountId}`);
      expect(refused?.status()).toBe(403);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('A ticket reference is needed');
      expect(await page.locator('main').textContent()).not.toMatch(/Consent|Decision|granted|refused/);
      await screenshot(page, 'console-support-ticket');

      await tabTo(page, 'input#reference');
      await page.keyboard.type(`T-${width}`);
      await page.keyboard.press('Enter');
      await page.waitForURL(`**/console/accounts/${accountId}`);
      expect(await page.locator('header .who').textContent()).toContain(`ticket T-${width}`);

      // Another account is still closed to this ticket.
      expect((await page.goto(`${svc.url}/console/accounts/${other}`))?.status()).toBe(403);
      const viewed = (await staffActions(svc, 'console_viewed')).filter((r) => r.data.actor === sub);
      expect(viewed.length).toBeGreaterThan(0);
      expect(viewed.every((r) => r.accountId === accountId && r.data.reference === `T-${width}`)).toBe(true);
    } finally {
      await context.close();
    }
  }, 60_000);
});

describe('accessibility of the foundation pages (axe: WCAG 2.0 and 2.1, A and AA)', () => {
  it.each(WIDTHS)(
    'home, ticket form, sign-in problems and 403 pages at %i px have no violations',
    async (width) => {
      const accountId = await createAccount(svc, admin);
      const context = await newContext(browser, width);
      const page = await context.newPage();
      const checked: Record<string, unknown[]> = {};
      const check = async (name: string) => {
        checked[name] = await axeViolations(page);
        expect(await scrollWidth(page)).toBeLessThanOrEqual(width);
      };
      try {
        await page.goto(`${svc.url}/console`);
        await check('not signed in (401)');
        await page.goto(`${svc.url}/console/login?token=not-a-token`);
        await check('sign-in refused');
        await staffSignInPage(svc, page, `axe-${width}`, 'compliance');
        await check('compliance home');
        await screenshot(page, 'console-home');
        await page.goto(`${svc.url}/console/accounts?account=A-nobody`);
        await check('account not found');

        const support = await newContext(browser, width);
        const supportPage = await support.newPage();
        await staffSignInPage(svc, supportPage, `axe-support-${width}`, 'support');
        checked['support home'] = await axeViolations(supportPage);
        await supportPage.goto(`${svc.url}/console/accounts/${accountId}`);
        checked['ticket needed (403)'] = await axeViolations(supportPage);
        await support.close();

        // A subscriber's session at the console's door.
        const subscriber = await newContext(browser, width);
        const subscriberPage = await subscriber.newPage();
        await signInPage(svc, subscriberPage, accountId);
        const res = await subscriberPage.goto(`${svc.url}/console`);
        expect(res?.status()).toBe(403);
        checked['subscriber refused (403)'] = await axeViolations(subscriberPage);
        await subscriber.close();
      } finally {
        await context.close();
      }
      for (const [name, violations] of Object.entries(checked)) expect([name, violations]).toEqual([name, []]);
    },
    120_000,
  );
});
