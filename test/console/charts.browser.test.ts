import type { Browser } from 'playwright-core';
import { axeViolations, launchBrowser, newContext, screenshot, scrollWidth } from '../support/browser';
import { staffSignInPage } from '../support/console';
import { deleteRedisPrefix } from '../support/database';
import { adminToken, createAccount, decide, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The charts page in the system Chromium, at 1280 and 390 px: accessible (axe, WCAG 2.1 A and AA) with data and
 * without, no horizontal scroll on a phone. The counts come from the scheduled audit-rollup job (every second here).
 */

let svc: TestService;
let browser: Browser;
beforeAll(async () => {
  svc = await startTestService({
    RUN_WORKERS: 'true',
    AUDIT_ROLLUP_INTERVAL_MS: '1000',
    CONSOLE_SIGNIN_PER_MINUTE: '1000',
  });
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  if (svc) await deleteRedisPrefix(svc.config.redis.prefix);
});

async function open(width: number) {
  const context = await newContext(browser, width);
  const page = await context.newPage();
  await staffSignInPage(svc, page, uniqueId('carol'), 'compliance');
  return { context, page };
}

/** Waits until the scheduled job has counted every record logged so far. */
async function rolledUp(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await svc.sql.query(
      'select s.last_seq >= h.seq as done from audit_rollup_state s, audit_head h where s.id = 1 and h.id = 1',
    );
    if (rows[0]?.done) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the audit-rollup job did not count the log');
}

it('without data: says so, and is accessible', async () => {
  for (const width of [1280, 390]) {
    const { context, page } = await open(width);
    const res = await page.goto(`${svc.url}/console/charts`);
    expect(res?.status()).toBe(200);
    expect(await page.getByText('No decisions in this period.').count()).toBe(3);
    expect(await page.locator('svg').count()).toBe(0);
    expect(await axeViolations(page)).toEqual([]);
    expect(await scrollWidth(page)).toBeLessThanOrEqual(width);
    await context.close();
  }
}, 120_000);

it('with data: four charts, each an image with its table, accessible at 1280 and 390 px', async () => {
  const admin = await adminToken(svc);
  const accounts = [];
  for (let i = 0; i < 6; i++) accounts.push(await createAccount(svc, admin));
  for (const [i, id] of accounts.entries()) {
    const changes = [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' as const }];
    if (i % 2 === 0) expect((await putConsents(svc, admin, id, changes)).status).toBe(200);
  }
  await putConsents(svc, admin, accounts[0]!, [{ purpose: 'ad_targeting', category: 'name', choice: 'revoke' }]);
  const ads = await svc.token('decisions', ['ad_targeting'], { subject: 'ad-pipeline' });
  const other = await svc.token('decisions', ['ad_targeting'], { subject: `a-very-long-client-id-${'x'.repeat(60)}` });
  for (const id of accounts) {
    await decide(svc, ads, { accountId: id, purpose: 'ad_targeting', categories: ['name'] });
    await decide(svc, ads, { accountId: id, purpose: 'ad_targeting', categories: ['name', 'precise_geolocation'] });
  }
  const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
    token: other,
    body: { purpose: 'ad_targeting', categories: ['name'], accountIds: accounts },
  });
  expect(batch.status).toBe(200);
  await rolledUp();

  for (const width of [1280, 390]) {
    const { context, page } = await open(width);
    const res = await page.goto(`${svc.url}/console/charts?days=30`);
    expect(res?.status()).toBe(200);
    const images = page.getByRole('img');
    expect(await images.count()).toBe(4);
    for (let i = 0; i < 4; i++) {
      const name = await images.nth(i).getAttribute('aria-labelledby');
      expect(name).toMatch(/-title .+-desc$/);
      const box = await images.nth(i).boundingBox();
      expect(box!.width).toBeLessThanOrEqual(width);
      expect(box!.width).toBeGreaterThan(Math.min(300, width * 0.65));
    }
    expect(await page.locator('table caption').count()).toBe(4);
    expect(await page.getByRole('img', { name: /Decisions per day by outcome/ }).count()).toBe(1);
    expect(await axeViolations(page)).toEqual([]);
    expect(await scrollWidth(page)).toBeLessThanOrEqual(width);
    await screenshot(page, 'console-charts');
    await context.close();
  }
}, 120_000);
