import os from 'node:os';
import { loadKeys } from '../platform/auth/keys';
import { issueToken } from '../platform/auth/tokens';
import { loadConfig } from '../platform/config';
import { ACCOUNT_ID } from '../platform/vocabulary';
import { parseDuration, parseOptions, UsageError } from './args';
import { recordStaffAction } from './staff-action';

/**
 * Prints a working portal sign-in URL for an account, signed with the development key: what the
 * ISP's identity provider does in production. Only the URL is printed.
 */
export async function portalLinkCommand(args: string[]): Promise<number> {
  const { values } = parseOptions(args, {
    account: { type: 'string' },
    ttl: { type: 'string', default: '10m' },
    base: { type: 'string' },
  });
  if (!values.account || !ACCOUNT_ID.test(values.account))
    throw new UsageError('--account ACCOUNT_ID is required (1–64 letters, digits, ".", "_" or "-")');
  const ttlSeconds = parseDuration(values.ttl);
  if (ttlSeconds > 900) throw new UsageError('--ttl: a sign-in link lives at most 15 minutes');
  const config = loadConfig();
  const keys = await loadKeys(config.auth, config.env);
  const jti = crypto.randomUUID();
  const token = await issueToken(keys, config.auth, {
    subject: values.account,
    scopes: [],
    purposes: [],
    ttlSeconds,
    audience: config.portal.tokenAudience,
    jti,
  });
  await recordStaffAction(
    config,
    { action: 'portal_link_issued', actor: `cli:${os.userInfo().username}`, ttlSeconds, jti },
    values.account,
  );
  const base = (values.base ?? config.portal.baseUrl).replace(/\/$/, '');
  process.stdout.write(`${base}/login?token=${token}\n`);
  return 0;
}
