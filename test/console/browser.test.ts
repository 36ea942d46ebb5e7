import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { tempDir } from '../support/audit';
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
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';
import { CLI, finished } from '../support/processes';

/**
 * The console's own pages in the system Chromium, keyboard only and without JavaScript: sign in with a staff link,
 * find an account, support's ticket gate; axe on every page of the foundation (home, ticket, sign-in problems, 403).
 */

let svc: TestService;
let browser: Browser;
let admin: string;

beforeAll(async () => {
  svc = await startTestService({
    CONSOLE_SIGNIN_PER_MINUTE: '1000',
    PORTAL_SIGNIN_PER_MINUTE: '1000',
    RUN_WORKERS: 'true',
    EXPORT_PACE_PERCENT: '100',
  });
  admin = await adminToken(svc);
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
});

/** Presses Tab until the focused element matches a CSS selector, or has this text, as a keyboard user would. */
async function tabTo(page: Page, target: string | { text: string }): Promise<void> {
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press('Tab');
    const found = await page.evaluate((t) => {
      const el = (globalThis as any).document.activeElement;
      if (!el) return false;
      return typeof t === 'string' ? el.matches(t) : el.textContent?.trim() === t.text;
    }, target);
    if (found) return;
  }
  throw new Error(`no keyboard stop matches ${JSON.stringify(target)}`);
}

describe.each(WIDTHS)('at %i px, without JavaScript', (width) => {
  it("the whole journey by keyboard: sign in, find the account, its timeline, the regulator's question, export " +
    'the answer, download it with its manifest and keys, and the CLI finds it intact', async () => {
    const accountId = await createAccount(svc, admin);
    await putConsents(svc, admin, accountId, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
    const pipeline = await svc.token('decisions', ['ad_targeting'], { subject: 'ad-pipeline' });
    const asked = { accountId, purpose: 'ad_targeting', categories: ['web_browsing_history'] };
    expect((await decide(svc, pipeline, asked)).status).toBe(200);

    const context = await newContext(browser, width, { javaScriptEnabled: false, acceptDownloads: true });
    const page = await context.newPage();
    const sub = `journey-${width}`;
    try {
      await staffSignInPage(svc, page, sub, 'compliance');
      await tabTo(page, 'input#account');
      await page.keyboard.type(accountId);
      await Promise.all([page.waitForURL(`**/console/accounts/${accountId}`), page.keyboard.press('Enter')]);
      const timeline = (await page.locator('main').textContent())?.replace(/\s+/g, ' ') ?? '';
      expect(timeline).toContain('Decision: allowed');
      expect(timeline).toContain('Consent event: granted');

      await tabTo(page, 'a[href="/console/question"]');
      await Promise.all([page.waitForURL('**/console/question'), page.keyboard.press('Enter')]);
      await tabTo(page, 'input#account');
      await page.keyboard.type(accountId);
      await tabTo(page, { text: 'Ask' });
      await Promise.all([page.waitForURL('**/console/question?**'), page.keyboard.press('Enter')]);
      expect(await page.locator('ol.decisions > li').count()).toBe(1);

      await tabTo(page, { text: 'Export this answer' });
      await Promise.all([page.waitForURL(/\/console\/exports\/[0-9a-f-]{36}$/), page.keyboard.press('Enter')]);
      const facts = async () => (await page.locator('main dl.facts').textContent())?.replace(/\s+/g, ' ') ?? '';
      for (let i = 0; i < 100 && !(await facts()).includes('Completed:'); i++) {
        await new Promise((r) => setTimeout(r, 200));
        await tabTo(page, { text: 'Refresh' });
        await Promise.all([page.waitForLoadState('load'), page.keyboard.press('Enter')]);
      }
      expect(await facts()).toContain('Completed: 1 record,');

      // The three files, saved under the names the page gives them, and the command exactly as printed.
      const dir = await tempDir();
      for (const link of ['The file', 'The signed manifest', 'The public keys (JWKS)']) {
        await tabTo(page, { text: link });
        const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
        await download.saveAs(path.join(dir, download.suggestedFilename()));
      }
      const command = (await page.locator('pre.command').textContent())!.trim();
      const [npx, optgate, ...args] = command.split(' ');
      expect([npx, optgate]).toEqual(['npx', 'optgate']);
      const verified = await finished(
        spawn(process.execPath, [CLI, ...args], { cwd: dir, env: { PATH: process.env.PATH ?? '' } }),
        60_000,
      );
      expect(verified.stdout).toContain('RESULT: INTACT');
      expect(verified.code).toBe(0);

      // Every view of the account's data left its record: the timeline, the answer, the export and its download.
      const mine = (await staffActions(svc)).filter((r) => r.data.actor === sub);
      expect(mine.map((r) => [r.data.action, r.data.view ?? null, r.accountId])).toEqual([
        ['console_signed_in', null, null],
        ['console_viewed', 'timeline', accountId],
        ['console_viewed', 'question', accountId],
        ['export_requested', null, accountId],
        ['console_viewed', 'export', accountId],
      ]);
      expect(mine.every((r) => r.data.role === 'compliance' || r.data.action === 'export_requested')).toBe(true);
      expect(mine.find((r) => r.data.action === 'export_requested')!.data.role).toBe('compliance');
    } finally {
      await context.close();
    }
  }, 120_000);

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
      // The ticket form is on the account's own address, so waiting for that address would not wait at all:
      // wait for the page that names the ticket.
      await page.locator('header .who', { hasText: `ticket T-${width}` }).waitFor();
      expect(new URL(page.url()).pathname).toBe(`/console/accounts/${accountId}`);

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
    'home, ticket form, sign-in problems, 403, 404 and signed-out pages at %i px have no violations',
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
        await page.goto(`${svc.url}/console/no-such-page`);
        await check('not found (404)');

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

        // Signing out: the page that says so.
        await page.goto(`${svc.url}/console`);
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.waitForLoadState('load');
        expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Signed out');
        await check('signed out');
      } finally {
        await context.close();
      }
      for (const [name, violations] of Object.entries(checked)) expect([name, violations]).toEqual([name, []]);
    },
    120_000,
  );
});
