import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { loadKeys } from '../platform/auth/keys';
import { SCOPES } from '../platform/auth/principal';
import { issueToken } from '../platform/auth/tokens';
import { loadConfig } from '../platform/config';
import { parseDuration, parseOptions, UsageError } from './args';
import { recordStaffAction } from './staff-action';

/** Prints a token signed with the service key, and nothing else, so that `$(npx optgate token ...)` works. */
export async function tokenCommand(args: string[]): Promise<number> {
  const { values } = parseOptions(args, {
    sub: { type: 'string' },
    scope: { type: 'string' },
    purposes: { type: 'string', default: '' },
    ttl: { type: 'string', default: '1h' },
    'subscriber-channel': { type: 'boolean', default: false },
  });
  if (!values.sub) throw new UsageError('--sub is required');
  if (!values.scope) throw new UsageError(`--scope is required (any of: ${SCOPES.join(' ')})`);
  const scopes = values.scope.split(/[\s,]+/).filter(Boolean);
  const unknownScope = scopes.find((s) => !(SCOPES as readonly string[]).includes(s));
  if (unknownScope) throw new UsageError(`unknown scope "${unknownScope}" (any of: ${SCOPES.join(' ')})`);

  const config = loadConfig();
  const purposes = values.purposes
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const { catalog } = config;
  const unknownPurpose = purposes.find((p) => !catalog.purposes.has(p) && !catalog.exceptions.has(p));
  if (unknownPurpose) throw new UsageError(`unknown purpose "${unknownPurpose}"`);

  const keys = await loadKeys(config.auth, config.env);
  const ttlSeconds = parseDuration(values.ttl);
  const jti = randomUUID();
  const subscriberChannel = values['subscriber-channel'] === true;
  const token = await issueToken(keys, config.auth, {
    subject: values.sub,
    scopes,
    purposes,
    ttlSeconds,
    jti,
    ...(subscriberChannel ? { extraClaims: { subscriber_channel: true } } : {}),
  });
  // Issuing a token is a staff action: it is on the audit record before the token is handed out.
  await recordStaffAction(config, {
    action: 'token_issued',
    actor: `cli:${os.userInfo().username}`,
    subject: values.sub,
    scopes,
    purposes,
    ttlSeconds,
    jti,
    ...(subscriberChannel ? { subscriberChannel } : {}),
  });
  process.stdout.write(`${token}\n`);
  return 0;
}
