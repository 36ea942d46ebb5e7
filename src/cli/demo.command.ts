import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { loadKeys, type ServiceKeys } from '../platform/auth/keys';
import { issueToken } from '../platform/auth/tokens';
import { type AppConfig, loadConfig } from '../platform/config';
import { prng } from '../platform/random';
import { parseOptions, UsageError } from './args';
import { recordStaffAction } from './staff-action';

/**
 * `optgate demo --accounts N`: demo data in one command, against the running service (`npm start`), through its own
 * API, so that everything it records is on the audit log and in the change feed like any other change. It creates N
 * accounts with a realistic mix of choices (the proportions of the benchmark's data), then prints a token for a sample
 * pipeline, a portal sign-in link and ready-to-paste curl commands; with --webhook-url, it registers that receiver for
 * the sample pipeline and prints its signing secret.
 */

const CONCURRENCY = 8;
const MAX_ACCOUNTS = 10_000;
const PIPELINE = 'demo-pipeline';

/** One account's choices, as a staff member records them on the subscriber's word. */
interface DemoAccount {
  readonly accountId: string;
  readonly changes: { purpose: string; category: string; choice: 'grant' | 'revoke' | 'opt_out' }[];
  /** Choices taken back later, in a second act. */
  readonly later: { purpose: string; category: string; choice: 'revoke' | 'withdraw_opt_out' }[];
  readonly closed: boolean;
}

/**
 * The mix, per account, from a seeded generator (the same proportions as the benchmark's data): 35% allow targeted
 * advertising on the websites they visit (40% of them also on the apps they use), a tenth of whom later take it back;
 * 10% say no to it; 10% opt out of other information for every use (a fifth of them withdraw the opt-out later); 15%
 * allow product analytics on the apps they use; 5% of accounts are closed at the end.
 */
export function demoAccounts(count: number, seed: number, purposes: readonly string[]): DemoAccount[] {
  const random = prng(seed);
  return Array.from({ length: count }, (_, i): DemoAccount => {
    const accountId = `DEMO-${String(i + 1).padStart(6, '0')}`;
    const changes: DemoAccount['changes'] = [];
    const later: DemoAccount['later'] = [];
    const web = random();
    if (web < 0.35) {
      const apps = random() < 0.4;
      changes.push({ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' });
      if (apps) changes.push({ purpose: 'ad_targeting', category: 'app_usage_history', choice: 'grant' });
      if (random() < 0.1) {
        later.push({ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'revoke' });
        if (apps) later.push({ purpose: 'ad_targeting', category: 'app_usage_history', choice: 'revoke' });
      }
    } else if (web < 0.45)
      changes.push({ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'revoke' });
    if (random() < 0.1) {
      for (const purpose of purposes) changes.push({ purpose, category: 'other_customer_info', choice: 'opt_out' });
      if (random() < 0.2)
        for (const purpose of purposes)
          later.push({ purpose, category: 'other_customer_info', choice: 'withdraw_opt_out' });
    }
    if (random() < 0.15) changes.push({ purpose: 'product_analytics', category: 'app_usage_history', choice: 'grant' });
    return { accountId, changes, later, closed: random() < 0.05 };
  });
}

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parseOptions(args, {
    accounts: { type: 'string', default: '200' },
    url: { type: 'string' },
    seed: { type: 'string', default: '1' },
    'webhook-url': { type: 'string' },
  });
  const count = Number(values.accounts);
  if (!Number.isInteger(count) || count < 1 || count > MAX_ACCOUNTS)
    throw new UsageError(`--accounts: a whole number from 1 to ${MAX_ACCOUNTS.toLocaleString('en')}`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new UsageError('--seed: a whole number');
  const config = loadConfig();
  const base = (values.url ?? `http://localhost:${config.http.port}`).replace(/\/$/, '');
  const keys = await loadKeys(config.auth, config.env);
  const purposes = [...config.catalog.purposes.keys()];
  const api = apiClient(
    base,
    await demoToken(config, keys, 'demo-seeder', ['accounts:write', 'consents:write'], purposes),
  );

  const notices = await api('GET', '/v1/notices').catch((err: Error) => {
    throw new UsageError(`${base} does not answer (${err.message}): start optgate first (npm start), or pass --url`);
  });
  const noticeVersion = (notices as { current: string }).current;
  const pipelineToken = await demoToken(config, keys, PIPELINE, ['decisions', 'webhooks:write'], purposes);
  // The sample pipeline's webhook receiver, registered before the seeding (when one is given), so that it receives
  // the demo's changes.
  const webhookUrl = values['webhook-url'];
  const webhook = webhookUrl
    ? ((await apiClient(base, pipelineToken)('POST', '/v1/webhooks', {
        url: webhookUrl,
        events: ['consent.granted', 'consent.revoked', 'consent.expired', 'consent.lapsed', 'account.closed'],
        description: 'optgate demo receiver',
      })) as { id: string; secret: string })
    : undefined;
  const accounts = demoAccounts(count, seed, purposes);
  const started = Date.now();
  for (let i = 0; i < accounts.length; i += 1000) {
    const chunk = accounts.slice(i, i + 1000).map((a) => ({ accountId: a.accountId, status: 'active' }));
    await api('POST', '/v1/accounts', { accounts: chunk });
  }
  const act = (accountId: string, changes: readonly object[]) =>
    changes.length
      ? api('PUT', `/v1/accounts/${accountId}/consents`, {
          channel: 'call_center',
          actor: { type: 'staff', id: 'demo' },
          verification: 'account_pin',
          reference: 'DEMO-SEED',
          noticeVersion,
          affirmative: true,
          changes,
        })
      : undefined;
  let events = 0;
  await inParallel(accounts, CONCURRENCY, async (a) => {
    await act(a.accountId, a.changes);
    await act(a.accountId, a.later);
    events += a.changes.length + a.later.length;
  });
  const closed = accounts.filter((a) => a.closed).map((a) => ({ accountId: a.accountId, status: 'closed' }));
  if (closed.length) await api('POST', '/v1/accounts', { accounts: closed });

  const allowed = accounts.find((a) => !a.closed && a.changes.some((c) => c.choice === 'grant') && !a.later.length);
  const someone = allowed ?? accounts[0]!;
  const link = await signInLink(config, keys, someone.accountId);
  const say = (line = '') => process.stdout.write(`${line}\n`);
  say(
    `Seeded ${count} accounts (${closed.length} closed) with ${events} consent changes in ${Date.now() - started} ms.`,
  );
  say();
  say(`Sign in to the portal as ${someone.accountId} (valid 10 minutes, once):`);
  say(`  ${link}`);
  say();
  say(`A token for the sample pipeline "${PIPELINE}" (scopes decisions and webhooks:write, valid 1 hour):`);
  say(`  export TOKEN=${pipelineToken}`);
  say();
  say('Ask whether the pipeline may use the account’s browsing history for targeted advertising:');
  say(`  curl -s ${base}/v1/decisions -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`);
  say(`    -d '{"accountId":"${someone.accountId}","purpose":"ad_targeting","categories":["web_browsing_history"]}'`);
  say();
  say('The same question for three accounts at once:');
  say(`  curl -s ${base}/v1/decisions/batch -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`);
  const three = accounts.slice(0, 3).map((a) => `"${a.accountId}"`);
  say(`    -d '{"purpose":"ad_targeting","categories":["web_browsing_history"],"accountIds":[${three.join(',')}]}'`);
  say();
  say('Filter records: only what may be used passes (the clickstream schema names each field’s category):');
  say(`  printf '%s\\n' '{"accountId":"${someone.accountId}","url":"https://example.com/","ts":1}' | \\`);
  say(`    curl -s '${base}/v1/filter?purpose=ad_targeting&schema=clickstream' -H "authorization: Bearer $TOKEN" \\`);
  say(`    -H 'content-type: application/x-ndjson' --data-binary @-`);
  say();
  say('Every change, in order (the change feed), and the subscriber’s side in the portal above.');
  say(`  curl -s '${base}/v1/consent-changes?limit=5' -H "authorization: Bearer $TOKEN"`);
  say();
  if (webhook) {
    say(`Webhook ${webhook.id} registered for ${webhookUrl}: grants, revocations, expiries and closures`);
    say(
      'are POSTed there, signed with this secret (check it with verifyWebhook from optgate/client, docs/webhooks.md):',
    );
    say(`  export WEBHOOK_SECRET=${webhook.secret}`);
    say('Its deliveries:');
    say(`  curl -s ${base}/v1/webhooks/${webhook.id}/deliveries -H "authorization: Bearer $TOKEN"`);
  } else {
    say('Have changes pushed to a receiver of yours (signed webhooks, see docs/webhooks.md), or run the demo with');
    say('--webhook-url URL to have it registered:');
    say(`  curl -s ${base}/v1/webhooks -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`);
    say(`    -d '{"url":"https://receiver.example/optgate","events":["consent.revoked","consent.granted"]}'`);
  }
  return 0;
}

/** A token signed with the service key, recorded on the audit log as a staff action before it is used. */
async function demoToken(config: AppConfig, keys: ServiceKeys, subject: string, scopes: string[], purposes: string[]) {
  const jti = randomUUID();
  const ttlSeconds = 3600;
  const token = await issueToken(keys, config.auth, { subject, scopes, purposes, ttlSeconds, jti });
  await recordStaffAction(config, {
    action: 'token_issued',
    actor: `cli:${os.userInfo().username}`,
    subject,
    scopes,
    purposes,
    ttlSeconds,
    jti,
  });
  return token;
}

async function signInLink(config: AppConfig, keys: ServiceKeys, accountId: string) {
  const jti = randomUUID();
  const ttlSeconds = 600;
  const token = await issueToken(keys, config.auth, {
    subject: accountId,
    scopes: [],
    purposes: [],
    ttlSeconds,
    audience: config.portal.tokenAudience,
    jti,
  });
  const actor = `cli:${os.userInfo().username}`;
  await recordStaffAction(config, { action: 'portal_link_issued', actor, ttlSeconds, jti }, accountId);
  return `${config.portal.baseUrl}/login?token=${token}`;
}

/** JSON over HTTP with the seeder's token; anything but a 2xx is an error naming the call. */
function apiClient(base: string, token: string) {
  return async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text);
  };
}

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
