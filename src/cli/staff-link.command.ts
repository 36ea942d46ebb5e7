import { staffRole } from '../platform/vocabulary';
import { parseOptions, UsageError } from './args';
import { printSignInLink } from './sign-in-link';

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
  return printSignInLink({
    subject: sub,
    ttl: values.ttl,
    base: values.base,
    path: '/console/login',
    audience: (config) => config.console.tokenAudience,
    extraClaims: { roles: [role.data] },
    record: (a) => ({ action: { action: 'staff_link_issued', subject: sub, role: role.data, ...a } }),
  });
}
