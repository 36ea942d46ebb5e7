import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { tempDir } from '../support/audit';
import { axeViolations, launchBrowser, newContext, screenshot, scrollWidth, WIDTHS } from '../support/browser';
import { staffSignInPage } from '../support/console';
import { adminToken, createAccount, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The regulator's question in Chromium, without JavaScript and by keyboard alone, at 1280 and 390 px:
 * ask, read the answer, export it, refresh the export's page until it is done, download the file.
 * axe finds nothing on the question, the answer, the exports and a finished export.
 */

let svc: TestService;
let browser: Browser;
let account: string;
const completed: string[] = [];

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', EXPORT_PACE_PERCENT: '100', CONSOLE_SIGNIN_PER_MINUTE: '1000' });
  const admin = await adminToken(svc);
  const pipeline = await svc.token('decisions', ['ad_targeting', 'product_analytics'], { subject: 'ad-pipeline' });
  account = await createAccount(svc, admin);
  const other = await createAccount(svc, admin);
  await putConsents(svc, admin, account, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
  for (const accountId of [account, other]) {
    for (const purpose of ['ad_targeting', 'product_analytics']) {
      const categories = [purpose === 'ad_targeting' ? 'web_browsing_history' : 'other_customer_info'];
      const body = { accountId, purpose, categories };
      expect((await call(svc.url, 'POST', '/v1/decisions', { token: pipeline, body })).status).toBe(200);
    }
  }
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
});

/** Presses Tab until the focused element matches (its text, or its id), and returns after it. */
async function tabTo(page: Page, match: { text?: string; id?: string }, limit = 80): Promise<void> {
  for (let presses = 0; presses < limit; presses++) {
    await page.keyboard.press('Tab');
    const focused = page.locator(':focus');
    if (!(await focused.count())) continue;
    if (match.id !== undefined && (await focused.getAttribute('id')) === match.id) return;
    if (match.text !== undefined && (await focused.textContent())?.trim() === match.text) return;
  }
  throw new Error(`never focused ${JSON.stringify(match)}`);
}

describe.each(WIDTHS)('at %i px, without JavaScript, by keyboard', (width) => {
  it('asks, reads the answer, exports it, refreshes until done and downloads the file', async () => {
    const context = await newContext(browser, width, { javaScriptEnabled: false, acceptDownloads: true });
    const page = await context.newPage();
    try {
      await staffSignInPage(svc, page, uniqueId('rita'), 'compliance');
      await tabTo(page, { text: "Regulator's question" });
      await Promise.all([page.waitForURL('**/console/question'), page.keyboard.press('Enter')]);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe("The regulator's question");
      if (width === 1280) await screenshot(page, 'console-question');

      await tabTo(page, { id: 'account' });
      await page.keyboard.type(account);
      await tabTo(page, { id: 'purpose' });
      await page.keyboard.type('Targeted');
      expect(await page.locator('#purpose').inputValue()).toBe('ad_targeting');
      await tabTo(page, { text: 'Ask' });
      await Promise.all([page.waitForURL('**/console/question?**'), page.keyboard.press('Enter')]);
      expect(await page.getByRole('heading', { level: 2, name: 'The answer' }).count()).toBe(1);
      const entries = page.locator('ol.decisions > li');
      expect(await entries.count()).toBe(1);
      expect((await entries.first().textContent())?.replace(/\s+/g, ' ')).toMatch(
        /Allowed .*Our advertising system \(ad-pipeline\).*The consent it rested on: granted for /,
      );
      await screenshot(page, 'console-answer');

      await tabTo(page, { text: 'Export this answer' });
      await Promise.all([page.waitForURL(/\/console\/exports\/[0-9a-f-]{36}$/), page.keyboard.press('Enter')]);
      const id = new URL(page.url()).pathname.split('/').pop()!;
      const status = async () => (await page.locator('main dl.facts').textContent())?.replace(/\s+/g, ' ') ?? '';
      for (let i = 0; i < 100 && !(await status()).includes('Completed:'); i++) {
        await new Promise((r) => setTimeout(r, 200));
        await tabTo(page, { text: 'Refresh' }).catch(async (err) => {
          throw new Error(`${err.message}: ${(await page.locator('main').textContent())?.replace(/\s+/g, ' ')}`);
        });
        await Promise.all([page.waitForLoadState('load'), page.keyboard.press('Enter')]);
      }
      expect(await status()).toContain('Completed: 1 record,');
      completed.push(id);
      if (width === 1280) await screenshot(page, 'console-export-done');

      await tabTo(page, { text: 'The file' });
      const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
      expect(download.suggestedFilename()).toBe(`optgate-export-${id}.ndjson`);
      const saved = path.join(await tempDir(), download.suggestedFilename());
      await download.saveAs(saved);
      const lines = (await readFile(saved, 'utf8')).trim().split('\n');
      expect(lines.map((l) => JSON.parse(l))).toEqual([
        expect.objectContaining({ type: 'decision', accountId: account, outcome: 'allow' }),
      ]);
      expect(await page.locator('pre.command').textContent()).toBe(
        `npx optgate audit verify optgate-export-${id}.ndjson --manifest optgate-export-${id}.manifest.jws` +
          ' --jwks jwks.json',
      );

      await tabTo(page, { text: 'Exports' });
      await Promise.all([page.waitForURL('**/console/exports'), page.keyboard.press('Enter')]);
      expect(await page.locator(`a[href="/console/exports/${id}"]`).count()).toBe(1);
      if (width === 1280) await screenshot(page, 'console-exports');
    } finally {
      await context.close();
    }
  }, 90_000);
});

it.each(WIDTHS)(
  'axe finds nothing on the question, the answer, the exports and a finished export, nothing scrolls sideways (%i px)',
  async (width) => {
    expect(completed.length).toBeGreaterThan(0);
    const context = await newContext(browser, width);
    const page = await context.newPage();
    try {
      await staffSignInPage(svc, page, uniqueId('axel'), 'compliance');
      const today = new Date().toISOString().slice(0, 10);
      const pages = [
        '/console/question',
        `/console/question?account=&purpose=any&from=${today}&to=${today}&outcome=both`,
        `/console/question?account=&purpose=any&from=${today}&to=2000-01-01&outcome=both`,
        '/console/exports',
        `/console/exports/${completed[0]}`,
      ];
      for (const target of pages) {
        await page.goto(`${svc.url}${target}`);
        expect([target, await axeViolations(page)]).toEqual([target, []]);
        // Nothing scrolls sideways, at 390 px either.
        expect([target, await scrollWidth(page)]).toEqual([target, width]);
      }
    } finally {
      await context.close();
    }
  },
  60_000,
);
