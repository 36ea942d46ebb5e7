import type { Request } from 'express';

/**
 * A choices form posted after its session ended keeps its allow/deny selections, and nothing else, in a short-lived
 * cookie of its own, so that the page shows them again to confirm after the subscriber signs in. Only a form from the
 * portal's own page may leave them: another site must not plant selections for the next sign-in.
 */

export const KEPT_COOKIE = 'optgate_pending';
export const KEPT_MS = 15 * 60_000;
const SELECTION = /^(?:p:[a-z][a-z0-9_]{0,63}|c:[a-z][a-z0-9_]{0,63}:[a-z][a-z0-9_]{0,63})$/;
const MAX_COOKIE = 3_500;

/** The cookie value for a form's selections; none when it has none or too many, or comes from another site. */
export function keptSelections(req: Request): string | undefined {
  const fromThisSite = req.get('sec-fetch-site') === 'same-origin' || hostOf(req.get('origin')) === req.host;
  return fromThisSite ? encode(req.body) : undefined;
}

/** The selections a cookie holds, checked as strictly as when they were kept; none if it is unreadable. */
export function selectionsOf(cookie: string | undefined): Record<string, string> | undefined {
  if (!cookie) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cookie, 'base64url').toString());
    return encode(parsed) ? (parsed as Record<string, string>) : undefined;
  } catch {
    return undefined;
  }
}

function encode(form: unknown): string | undefined {
  if (!form || typeof form !== 'object') return undefined;
  const picked = Object.entries(form).filter(([k, v]) => SELECTION.test(k) && (v === 'allow' || v === 'deny'));
  const value = Buffer.from(JSON.stringify(Object.fromEntries(picked))).toString('base64url');
  return picked.length && value.length <= MAX_COOKIE ? value : undefined;
}

function hostOf(origin: string | undefined): string | undefined {
  try {
    return origin ? new URL(origin).host : undefined;
  } catch {
    return undefined;
  }
}
