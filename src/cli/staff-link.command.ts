import os from 'node:os';
import { loadKeys } from '../platform/auth/keys';
import { issueToken } from '../platform/auth/tokens';
import { loadConfig } from '../platform/config';
import { staffRole } from '../platform/vocabulary';
import { parseDuration, parseOptions, UsageError } from './args';
import { recordStaffAction } from './staff-action';

/**
 * Prints a one-use compliance console sign-in URL for a member of staff, signed with the
 * development key: what the ISP's identity provider does in production (audience
 * `optgate-console`, a `roles` claim). Only the URL is printed.
 */
export async function staffLinkCommand(args: string[]): Promise<number> {
  const { values } = parseOptions(args, {
    sub: { type: 'string' },
    role: { type: 'string' },
    ttl: { type: 'string', default: '10m' },
    base: { type: 'string' },
  });
  const sub = values.sub?.trim();
  if (!sub || sub.length > 128 || !/^[\x20-\x7e]+$/.test(sub)) {
    throw new UsageError('--sub NAME is required: the staff member (1–128 printable characters)');
  }
  const role = staffRole.safeParse(values.role);
  if (!role.success) throw new UsageError('--role compliance|support is required');
  const ttlSeconds = parseDuration(values.ttl);
  if (ttlSeconds > 900) throw new UsageError('--ttl: a sign-in link lives at most 15 minutes');
  const config = loadConfig();
  const keys = await loadKeys(config.auth, config.env);
  const jti = crypto.randomUUID();
  const token = await issueToken(keys, config.auth, {
    subject: sub,
    scopes: [],
    purposes: [],
    ttlSeconds,
    audience: config.console.tokenAudience,
    jti,
    extraClaims: { roles: [role.data] },
  });
  await recordStaffAction(config, {
    action: 'staff_link_issued',
    actor: `cli:${os.userInfo().username}`,
    subject: sub,
    role: role.data,
    ttlSeconds,
    jti,
  });
  const base = (values.base ?? config.portal.baseUrl).replace(/\/$/, '');
  process.stdout.write(`${base}/console/login?token=${token}\n`);
  return 0;
}
