import type { Browser } from 'playwright-core';
import { asAttacker, checkpointAtHead } from '../support/audit';
import { axeViolations, launchBrowser, newContext, screenshot, scrollWidth } from '../support/browser';
import { staffSignInPage } from '../support/console';
import { adminToken, createAccount, uniqueId } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';

/**
 * The integrity page in Chromium, at 1280 and 390 px: axe (WCAG 2.0 and 2.1, A and AA) finds nothing, with and
 * without the banner; nothing scrolls sideways; screenshots for review.
 */

let svc: TestService;
let browser: Browser;

beforeAll(async () => {
  svc = await startTestService({
    RUN_WORKERS: 'true',
    AUDIT_VERIFY_INTERVAL_MS: String(7 * 86_400_000),
    CONSOLE_SIGNIN_PER_MINUTE: '1000',
  });
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
});

async function integrityPage(width: number) {
  const context = await newContext(browser, width);
  const page = await context.newPage();
  await staffSignInPage(svc, page, uniqueId('alice'), 'compliance');
  await page.goto(`${svc.url}/console/integrity`);
  return { context, page };
}

it('all well: the head, a run from "Verify now", no banner; axe-clean at both widths', async () => {
  await createAccount(svc, await adminToken(svc));
  await checkpointAtHead(svc.sql);
  for (const width of [1280, 390]) {
    const { context, page } = await integrityPage(width);
    await page.getByRole('button', { name: 'Verify now' }).click();
    await page.waitForURL(/\/console\/integrity\?ran=1$/);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Integrity of the audit log');
    expect(await page.getByRole('status').textContent()).toContain('Verification run: intact');
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(await scrollWidth(page)).toBeLessThanOrEqual(width);
    expect(await axeViolations(page)).toEqual([]);
    await screenshot(page, 'console-integrity');
    await context.close();
  }
}, 60_000);

it('a tampered record: the banner on the page, axe-clean at both widths', async () => {
  const accountId = await createAccount(svc, await adminToken(svc));
  await asAttacker(svc.databaseUrl, (c) =>
    c.query(
      `update audit_records set content = replace(content, '"change":"opened"', '"change":"updated"')
       where account_id = $1`,
      [accountId],
    ),
  );
  for (const width of [1280, 390]) {
    const { context, page } = await integrityPage(width);
    await page.getByRole('button', { name: 'Verify now' }).click();
    await page.waitForURL(/\/console\/integrity\?ran=1$/);
    expect(await page.getByRole('alert').textContent()).toContain('Verification failed');
    expect(await scrollWidth(page)).toBeLessThanOrEqual(width);
    expect(await axeViolations(page)).toEqual([]);
    if (width === 1280) await screenshot(page, 'console-integrity-alert');
    await context.close();
  }
}, 60_000);
