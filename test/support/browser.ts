import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import {
  type Browser,
  type BrowserContext,
  type BrowserContextOptions,
  chromium,
  type Locator,
  type Page,
} from 'playwright-core';
import { loadKeys, type ServiceKeys } from '../../src/platform/auth/keys';
import { issueToken } from '../../src/platform/auth/tokens';
import type { TestService } from './harness';
import { ROOT } from './processes';

// Functions handed to page.evaluate run in Chromium. The project compiles without the DOM library,
// so the few browser globals they use are declared here, for this module only.
declare const document: any;
declare function getComputedStyle(el: any): any;

/**
 * Helpers for the portal tests: the system Chromium driven by playwright-core (never a downloaded
 * browser), sign-in links minted in-process, axe-core, screenshots, and a small cookie-keeping
 * HTTP client for what a browser cannot show (status codes, headers, forged forms).
 */

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = path.join(ROOT, 'test-output', 'screenshots');
export const WIDTHS = [1280, 390] as const;

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** A fresh context (cookies of its own) at a given width; axe needs pages from browser.newContext(). */
export function newContext(browser: Browser, width = 1280, o: BrowserContextOptions = {}): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width, height: width > 600 ? 900 : 844 }, locale: 'en-US', ...o });
}

const keysOf = new WeakMap<TestService, Promise<ServiceKeys>>();
function serviceKeys(svc: TestService): Promise<ServiceKeys> {
  let keys = keysOf.get(svc);
  if (!keys) {
    keys = loadKeys(svc.config.auth, svc.config.env);
    keysOf.set(svc, keys);
  }
  return keys;
}

/** A sign-in token as the ISP's identity provider would issue it (here: signed with the development key). */
export async function signInToken(
  svc: TestService,
  accountId: string,
  o: { ttlSeconds?: number; audience?: string; jti?: string; issuer?: string } = {},
): Promise<string> {
  const keys = await serviceKeys(svc);
  return issueToken(
    keys,
    { ...svc.config.auth, issuer: o.issuer ?? svc.config.auth.issuer },
    {
      subject: accountId,
      scopes: [],
      purposes: [],
      ttlSeconds: o.ttlSeconds ?? 600,
      audience: o.audience ?? svc.config.portal.tokenAudience,
      jti: o.jti,
    },
  );
}

export async function signInUrl(
  svc: TestService,
  accountId: string,
  o: Parameters<typeof signInToken>[2] = {},
): Promise<string> {
  return `${svc.url}/login?token=${await signInToken(svc, accountId, o)}`;
}

/** Signs a page in with a fresh link; it lands on the choices page. */
export async function signInPage(svc: TestService, page: Page, accountId: string): Promise<void> {
  const res = await page.goto(await signInUrl(svc, accountId));
  if (res?.status() !== 200 || new URL(page.url()).pathname !== '/choices') {
    throw new Error(`sign-in failed: ${res?.status()} at ${page.url()}`);
  }
}

const PURPOSE_LABELS: Record<string, string> = {
  ad_targeting: 'Targeted advertising',
  data_sale: 'Selling your data',
  third_party_disclosure: 'Sharing with other companies',
  permit_access: 'Letting other companies access your data',
  product_analytics: 'Improving our products',
};

/** One purpose's card on the choices page, found as a screen reader user would: a region named by its heading. */
export const purposeCard = (page: Page, purpose: string): Locator =>
  page.getByRole('region', { name: PURPOSE_LABELS[purpose], exact: true });

/** The choice for a whole purpose (its allow and don't-allow radios). */
export const wholePurpose = (page: Page, purpose: string): Locator =>
  purposeCard(page, purpose).getByRole('group', { name: 'Your choice for this use', exact: true });

/**
 * The fieldset of one purpose × category on the choices page, found as a screen reader user would: region, then
 * "Choose per kind of information" (opened, as a person would, if it is closed), then group.
 */
export async function item(page: Page, purpose: string, categoryLabel: string): Promise<Locator> {
  await openKinds(page, purpose);
  return purposeCard(page, purpose).getByRole('group', { name: categoryLabel, exact: true });
}

/** Opens a purpose's "Choose per kind of information" (a <details>), if it is closed. */
export async function openKinds(page: Page, purpose: string): Promise<void> {
  const details = purposeCard(page, purpose).locator('details.kinds');
  if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
}
export const allowOf = (group: Locator) => group.getByRole('radio', { name: 'Allow', exact: true });
export const denyOf = (group: Locator) => group.getByRole('radio', { name: "Don't allow", exact: true });

/** How many nodes of each role Chromium's own accessibility tree has (not Playwright's reading of the DOM). */
export async function accessibleRoles(page: Page): Promise<Record<string, number>> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as {
      nodes: { ignored: boolean; role?: { value: string } }[];
    };
    const roles: Record<string, number> = {};
    for (const n of nodes) if (!n.ignored && n.role) roles[n.role.value] = (roles[n.role.value] ?? 0) + 1;
    return roles;
  } finally {
    await cdp.detach();
  }
}

export type AxeViolation = {
  id: string;
  impact?: string | null;
  help: string;
  nodes: { target: unknown; failureSummary?: string }[];
};

/** WCAG 2.0 and 2.1, A and AA, violations of the page as it is now, summarised for a readable failure. */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })),
  }));
}

/** Saves a full-page screenshot under test-output/screenshots (git-ignored). */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const width = page.viewportSize()?.width ?? 0;
  const file = path.join(SCREENSHOTS, `${name}-${width}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** How wide the document is: at 390 px nothing may scroll sideways. */
export function scrollWidth(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth);
}

/** What makes the focused element visibly focused. */
export function focusStyle(page: Page) {
  return page.evaluate(() => {
    const el = document.activeElement as any;
    if (!el || el === document.body) return null;
    const s = getComputedStyle(el);
    return {
      tag: el.tagName.toLowerCase(),
      name: el.getAttribute('name'),
      value: el.getAttribute('value'),
      text: (el.textContent ?? '').trim().slice(0, 60),
      outlineStyle: s.outlineStyle,
      outlineWidth: s.outlineWidth,
      boxShadow: s.boxShadow,
      focusVisible: el.matches(':focus-visible'),
    };
  });
}

/** A copy of config/ in a temporary folder, for tests that need another catalog or another language. */
export function copyConfig(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-portal-config-'));
  cpSync(path.join(ROOT, 'config'), dir, { recursive: true });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------------------------------------
// HTTP level: one cookie, forms as a browser posts them, redirects not followed.

export interface PageReply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  /** Where a redirect points (path and query), if it is one. */
  readonly location?: string;
}

export class PortalClient {
  cookie?: string;
  /** Every Set-Cookie header seen, raw, for checking its attributes. */
  readonly setCookies: string[] = [];

  constructor(
    readonly base: string,
    readonly headers: Record<string, string> = {},
    /** The session cookie it keeps: the portal's, or the console's (`optgate_console`). */
    readonly sessionCookie = 'optgate_session',
  ) {}

  async request(
    method: string,
    target: string,
    o: { form?: Record<string, string | string[]>; headers?: Record<string, string> } = {},
  ): Promise<PageReply> {
    const headers: Record<string, string> = { accept: 'text/html', ...this.headers, ...o.headers };
    if (this.cookie) headers.cookie = this.cookie;
    let body: string | undefined;
    if (o.form) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(o.form))
        for (const value of Array.isArray(v) ? v : [v]) params.append(k, value);
      body = params.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(target.startsWith('http') ? target : this.base + target, {
      method,
      headers,
      body,
      redirect: 'manual',
    });
    for (const c of res.headers.getSetCookie()) {
      this.setCookies.push(c);
      const [pair] = c.split(';');
      const [name, value] = pair!.split('=');
      if (name !== this.sessionCookie) continue;
      this.cookie = value && !/expires=Thu, 01 Jan 1970/i.test(c) ? `${name}=${value}` : undefined;
    }
    const location = res.headers.get('location') ?? undefined;
    return { status: res.status, headers: res.headers, body: await res.text(), location };
  }

  get(target: string, headers?: Record<string, string>) {
    return this.request('GET', target, { headers });
  }

  post(target: string, form: Record<string, string | string[]>, headers?: Record<string, string>) {
    return this.request('POST', target, { form, headers });
  }

  /** Follows a sign-in link: 303 to /choices with a session cookie. */
  async signIn(url: string): Promise<PageReply> {
    const r = await this.get(url);
    if (r.status !== 303 || r.location !== '/choices' || !this.cookie)
      throw new Error(`sign-in failed: ${r.status} ${r.body.slice(0, 300)}`);
    return r;
  }

  /** The CSRF token of the forms of a signed-in page. */
  async csrf(target = '/choices'): Promise<string> {
    const page = await this.get(target);
    const token = csrfOf(page.body);
    if (!token) throw new Error(`no CSRF token on ${target}: ${page.status}`);
    return token;
  }
}

export const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
export const noticeVersionOf = (html: string) => /name="noticeVersion" value="([^"]+)"/.exec(html)?.[1];

/** The text of a page without its tags, whitespace collapsed: what a reader sees. */
export function textOf(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&amp;/g, '&')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Receipt links (event ids) of a history or confirmation page, in page order. */
export const receiptIdsOf = (html: string) =>
  [...html.matchAll(/href="\/receipts\/([0-9a-f-]{36})"/g)].map((m) => m[1]!);

/** The radio inputs of the choices page, with what is checked. */
export function radiosOf(html: string): { name: string; value: string; checked: boolean }[] {
  return [...html.matchAll(/<input type="radio" name="([^"]+)" value="([^"]+)"( checked)?>/g)].map((m) => ({
    name: m[1]!,
    value: m[2]!,
    checked: !!m[3],
  }));
}
