import type { Page } from 'playwright-core';
import { loadKeys } from '../../src/platform/auth/keys';
import { issueToken } from '../../src/platform/auth/tokens';
import type { StaffRole } from '../../src/platform/vocabulary';
import { PortalClient } from './browser';
import type { TestService } from './harness';

/**
 * Helpers for the compliance console tests: staff sign-in tokens as the identity provider would
 * issue them (signed here with the development key, as `npx optgate staff-link` does), and a
 * cookie-keeping HTTP client for the console's session.
 */

export async function staffToken(
  svc: TestService,
  sub: string,
  roles: readonly string[] | StaffRole,
  o: { ttlSeconds?: number; audience?: string; jti?: string } = {},
): Promise<string> {
  const keys = await loadKeys(svc.config.auth, svc.config.env);
  return issueToken(keys, svc.config.auth, {
    subject: sub,
    scopes: [],
    purposes: [],
    ttlSeconds: o.ttlSeconds ?? 600,
    audience: o.audience ?? svc.config.console.tokenAudience,
    jti: o.jti,
    extraClaims: { roles: typeof roles === 'string' ? [roles] : [...roles] },
  });
}

export async function staffSignInUrl(
  svc: TestService,
  sub: string,
  role: StaffRole,
  o: Parameters<typeof staffToken>[3] = {},
): Promise<string> {
  return `${svc.url}/console/login?token=${await staffToken(svc, sub, role, o)}`;
}

/** An HTTP client holding a console session. */
export class ConsoleClient extends PortalClient {
  constructor(base: string, headers: Record<string, string> = {}) {
    super(base, headers, 'optgate_console');
  }

  /** Follows a staff sign-in link: 303 to /console with a session cookie. */
  override async signIn(url: string) {
    const r = await this.get(url);
    if (r.status !== 303 || r.location !== '/console' || !this.cookie)
      throw new Error(`console sign-in failed: ${r.status} ${r.body.slice(0, 300)}`);
    return r;
  }

  override csrf(target = '/console') {
    return super.csrf(target);
  }
}

/** A console client signed in as `sub` with `role`. */
export async function staffClient(svc: TestService, sub: string, role: StaffRole): Promise<ConsoleClient> {
  const client = new ConsoleClient(svc.url);
  await client.signIn(await staffSignInUrl(svc, sub, role));
  return client;
}

/** Signs a browser page in to the console with a fresh staff link; it lands on the console's home page. */
export async function staffSignInPage(svc: TestService, page: Page, sub: string, role: StaffRole): Promise<void> {
  const res = await page.goto(await staffSignInUrl(svc, sub, role));
  if (res?.status() !== 200 || new URL(page.url()).pathname !== '/console') {
    throw new Error(`console sign-in failed: ${res?.status()} at ${page.url()}`);
  }
}

export interface StaffActionRow {
  readonly seq: number;
  readonly accountId: string | null;
  readonly data: Record<string, any>;
}

/** The staff_action records of the log (those of one action, if given), in order. */
export async function staffActions(svc: TestService, action?: string): Promise<StaffActionRow[]> {
  const { rows } = await svc.sql.query(
    `select seq::int as seq, account_id, content from audit_records where type = 'staff_action' order by seq`,
  );
  return rows
    .map((r) => ({ seq: r.seq as number, accountId: r.account_id as string | null, data: JSON.parse(r.content).data }))
    .filter((r) => action === undefined || r.data.action === action);
}
