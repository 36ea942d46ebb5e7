import os from 'node:os';
import type { StaffActionData } from '../audit';
import { loadKeys } from '../platform/auth/keys';
import { issueToken } from '../platform/auth/tokens';
import { type AppConfig, loadConfig } from '../platform/config';
import { parseDuration, UsageError } from './args';
import { recordStaffAction } from './staff-action';

export interface SignInLink {
  readonly subject: string;
  /** `--ttl` as given (at most 15 minutes). */
  readonly ttl: string;
  /** `--base` as given, or the configured portal address. */
  readonly base: string | undefined;
  readonly path: string;
  readonly audience: (config: AppConfig) => string;
  readonly extraClaims?: Record<string, unknown>;
  /** The staff action that records the issuance (by the CLI's operating-system user), and the account it names. */
  readonly record: (a: { actor: string; ttlSeconds: number; jti: string }) => {
    action: StaffActionData;
    accountId?: string;
  };
}

/**
 * A one-use sign-in link signed with the development key, as the ISP's identity provider would issue it (the portal's
 * or the console's), its issuance recorded on the audit chain first. Prints only the URL.
 */
export async function printSignInLink(o: SignInLink): Promise<number> {
  const ttlSeconds = parseDuration(o.ttl);
  if (ttlSeconds > 900) throw new UsageError('--ttl: a sign-in link lives at most 15 minutes');
  const config = loadConfig();
  const keys = await loadKeys(config.auth, config.env);
  const jti = crypto.randomUUID();
  const token = await issueToken(keys, config.auth, {
    subject: o.subject,
    scopes: [],
    purposes: [],
    ttlSeconds,
    audience: o.audience(config),
    jti,
    extraClaims: o.extraClaims,
  });
  const { action, accountId } = o.record({ actor: `cli:${os.userInfo().username}`, ttlSeconds, jti });
  await recordStaffAction(config, action, accountId);
  const base = (o.base ?? config.portal.baseUrl).replace(/\/$/, '');
  process.stdout.write(`${base}${o.path}?token=${token}\n`);
  return 0;
}
