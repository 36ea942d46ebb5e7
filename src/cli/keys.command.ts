import os from 'node:os';
import { rotateSigningKey } from '../platform/auth/keys';
import { loadConfig } from '../platform/config';
import { UsageError } from './args';
import { recordStaffAction } from './staff-action';

const USAGE = 'usage: optgate keys rotate';

/**
 * `optgate keys rotate`: a new signing key; the old one's public half stays in the JWKS, marked
 * retired, so that receipts, manifests and tree heads it signed still verify. The rotation is a
 * staff action on the audit chain. Restart the instances to sign with the new key.
 */
export async function keysCommand([sub, ...args]: string[]): Promise<number> {
  if (sub !== 'rotate' || args.length) throw new UsageError(USAGE);
  const config = loadConfig();
  const { retiredKid, kid } = await rotateSigningKey(config.auth, config.env, new Date());
  await recordStaffAction(config, {
    action: 'signing_key_rotated',
    actor: `cli:${os.userInfo().username}`,
    retiredKid,
    kid,
  });
  process.stdout.write(
    `signing key rotated: ${retiredKid} retired (kept in ${config.auth.retiredKeysFile}), ${kid} signs from now on.\n` +
      'Restart the instances (one at a time): until then they sign with the key they loaded.\n',
  );
  return 0;
}
