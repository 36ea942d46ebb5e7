import { ACCOUNT_ID } from '../platform/vocabulary';
import { parseOptions, UsageError } from './args';
import { printSignInLink } from './sign-in-link';

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
  const account = values.account;
  if (!account || !ACCOUNT_ID.test(account))
    throw new UsageError('--account ACCOUNT_ID is required (1–64 letters, digits, ".", "_" or "-")');
  return printSignInLink({
    subject: account,
    ttl: values.ttl,
    base: values.base,
    path: '/login',
    audience: (config) => config.portal.tokenAudience,
    record: (a) => ({ action: { action: 'portal_link_issued', ...a }, accountId: account }),
  });
}
