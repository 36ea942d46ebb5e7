import type { Browser } from 'playwright-core';
import {
  axeViolations,
  launchBrowser,
  newContext,
  PortalClient,
  screenshot,
  scrollWidth,
  textOf,
} from '../support/browser';
import { startTestService, type TestService } from '../support/harness';

// Run in Chromium by page.evaluate (the project compiles without the DOM library).
declare const document: any;
declare function getComputedStyle(el: any): any;

/**
 * The notice to print and hand over in a store (`/notice/print`): the version in force or one asked for, with its
 * version, effective date and SHA-256 on the paper; only versions in effect; the portal's strict CSP; no navigation in
 * print; axe-clean in Chromium, on screen and in print.
 */

let svc: TestService;
/** The service's clock runs this far behind real time while a test looks at a time before v3. */
let behind = 0;

beforeAll(async () => {
  svc = await startTestService({}, { clock: () => new Date(Date.now() - behind) });
});
afterAll(() => svc.stop());

const notice = (version: string) => svc.config.catalog.noticesByVersion.get(version)!;
const longDate = (d: Date) => new Intl.DateTimeFormat('en', { dateStyle: 'long', timeZone: 'UTC' }).format(d);

describe('GET /notice/print over HTTP', () => {
  it('the notice in force, with its version, effective date and hash, under the strict CSP', async () => {
    const r = await new PortalClient(svc.url).get('/notice/print');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const csp = Object.fromEntries(
      (r.headers.get('content-security-policy') ?? '').split(';').map((d) => {
        const [name, ...values] = d.trim().split(/\s+/);
        return [name, values];
      }),
    );
    expect(csp).toEqual({
      'default-src': ["'none'"],
      'style-src': ["'self'"],
      'img-src': ["'self'"],
      'form-action': ["'self'"],
      'frame-ancestors': ["'none'"],
      'base-uri': ["'none'"],
    });
    expect(r.body).not.toMatch(/<script|\sstyle=|\son[a-z]+=|javascript:/i);
    const v3 = notice('v3');
    const text = textOf(r.body);
    expect(text).toContain(
      `Version v3 In effect from ${longDate(v3.effectiveAt)} Status In force when this copy was made ` +
        `SHA-256 of this text ${v3.sha256} Copy made `,
    );
    expect(r.body).toContain(`<code class="hash">${v3.sha256}</code>`);
    expect(text).toContain(`End of the privacy notice, version v3. SHA-256 of its text: ${v3.sha256}`);
    // The notice itself, rendered; a way back, for the screen only.
    expect(r.body).toMatch(/<h1[^>]*>Your privacy choices<\/h1>/);
    expect(r.body).toContain('<strong>What this covers.</strong>');
    expect(r.body).toMatch(/<p class="banner screen-only">[^<]*<a href="\/notice\/v3">Back to the notice<\/a>/);
    // Asked for by name, the same version.
    const named = await new PortalClient(svc.url).get('/notice/print?version=v3');
    expect(textOf(named.body)).toContain(`Version v3 In effect from ${longDate(v3.effectiveAt)} Status In force`);
  });

  it('?version= an earlier version: printed, and said to be replaced', async () => {
    const client = new PortalClient(svc.url);
    for (const [version, next] of [
      ['v1', 'v2'],
      ['v2', 'v3'],
    ] as const) {
      const r = await client.get(`/notice/print?version=${version}`);
      expect(r.status).toBe(200);
      const text = textOf(r.body);
      expect(text).toContain(`Version ${version} In effect from ${longDate(notice(version).effectiveAt)}`);
      expect(text).toContain(`Replaced by version ${next} on ${longDate(notice(next).effectiveAt)}`);
      expect(r.body).toContain(`<code class="hash">${notice(version).sha256}</code>`);
    }
  });

  it('the public notice pages link to it', async () => {
    const client = new PortalClient(svc.url);
    expect((await client.get('/notice')).body).toContain('<a href="/notice/print?version=v3">Print this version</a>');
    expect((await client.get('/notice/v1')).body).toContain('href="/notice/print?version=v1"');
  });

  it('an unknown version is the 404 page; a malformed one the 400 page', async () => {
    const client = new PortalClient(svc.url);
    for (const query of ['?version=v9', '?version=print']) {
      const r = await client.get(`/notice/print${query}`);
      expect({ query, status: r.status }).toEqual({ query, status: 404 });
      expect(r.headers.get('content-type')).toMatch(/^text\/html/);
      expect(textOf(r.body)).toContain('There is nothing at this address.');
    }
    for (const query of [
      '?version=',
      '?version=%3Cscript%3E',
      '?version=v1&version=v2',
      `?version=${'v'.repeat(33)}`,
    ]) {
      const r = await client.get(`/notice/print${query}`);
      expect({ query, status: r.status }).toEqual({ query, status: 400 });
      expect(r.headers.get('content-type')).toMatch(/^text\/html/);
      expect(textOf(r.body)).toContain('We could not read what you sent.');
      expect(r.body).not.toContain('<script>');
    }
  });

  it('a version not in effect yet cannot be printed, nor is it offered', async () => {
    // Before v3 took effect, v2 was the notice in force.
    behind = Date.now() - Date.parse('2024-06-01T00:00:00Z');
    try {
      const client = new PortalClient(svc.url);
      expect((await client.get('/notice/print?version=v3')).status).toBe(404);
      const current = await client.get('/notice/print');
      expect(current.status).toBe(200);
      expect(textOf(current.body)).toContain('Version v2 In effect from March 1, 2023 Status In force');
      const upcoming = await client.get('/notice/v3');
      expect(textOf(upcoming.body)).toContain('This version takes effect on September 1, 2025.');
      expect(upcoming.body).not.toContain('/notice/print');
    } finally {
      behind = 0;
    }
  });
});

describe('in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  }, 60_000);
  afterAll(() => browser?.close());

  it('axe-clean on screen (1280 and 390 px) and in print; printed, only the notice and its identity', async () => {
    const report: Record<string, unknown> = {};
    for (const width of [1280, 390]) {
      const context = await newContext(browser, width);
      try {
        const page = await context.newPage();
        await page.goto(`${svc.url}/notice`);
        await page.getByRole('link', { name: 'Print this version' }).click();
        await page.waitForURL('**/notice/print?version=v3');
        expect(await page.locator('h1').count()).toBe(1);
        expect(await page.getAttribute('html', 'lang')).toBe('en');
        const violations = await axeViolations(page);
        if (violations.length) report[`screen ${width}`] = violations;
        const sw = await scrollWidth(page);
        if (sw > width) report[`screen ${width}: scrollWidth`] = sw;
        expect(await page.getByRole('navigation').isVisible()).toBe(true);
        await screenshot(page, 'notice-print');

        await page.emulateMedia({ media: 'print' });
        const printViolations = await axeViolations(page);
        if (printViolations.length) report[`print ${width}`] = printViolations;
        expect(await page.getByRole('navigation').isVisible()).toBe(false);
        expect(await page.locator('footer.site').isVisible()).toBe(false);
        expect(await page.getByRole('link', { name: 'Back to the notice' }).isVisible()).toBe(false);
        expect(await page.locator('code.hash').textContent()).toBe(notice('v3').sha256);
        expect(await page.locator('.print-end').isVisible()).toBe(true);
        expect(await page.evaluate(() => getComputedStyle(document.documentElement).fontFamily)).toMatch(/Georgia/);
        await screenshot(page, 'notice-print-print');
        if (width === 1280) expect((await page.pdf({ format: 'A4' })).subarray(0, 5).toString()).toBe('%PDF-');
      } finally {
        await context.close();
      }
    }
    expect(report).toEqual({});
  }, 120_000);
});
