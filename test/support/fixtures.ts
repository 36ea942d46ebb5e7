import { randomBytes } from 'node:crypto';
import { call, type Reply, type TestService } from './harness';

export const uniqueId = (prefix = 'A') => `${prefix}-${randomBytes(5).toString('hex')}`;

/** A token that can do everything, for arranging state. */
export async function adminToken(
  svc: TestService,
  purposes: string[] = [...svc.config.catalog.purposes.keys(), ...svc.config.catalog.exceptions.keys()],
) {
  return svc.token('decisions consents:write accounts:write audit:read webhooks:write', purposes, {
    claims: { subscriber_channel: true },
  });
}

export async function createAccount(
  svc: TestService,
  token: string,
  status: 'active' | 'closed' = 'active',
  accountId = uniqueId(),
) {
  const r = await call(svc.url, 'POST', '/v1/accounts', { token, body: { accounts: [{ accountId, status }] } });
  if (r.status !== 200) throw new Error(`account setup failed: ${r.status} ${JSON.stringify(r.body)}`);
  return accountId;
}

export type ChangeInput = {
  purpose: string;
  category: string;
  choice: 'grant' | 'revoke' | 'opt_out' | 'withdraw_opt_out';
  expiresAt?: string;
  recipients?: string[];
};

export function putConsents(
  svc: TestService,
  token: string,
  accountId: string,
  changes: ChangeInput[],
  extra: Record<string, unknown> = {},
): Promise<Reply> {
  return call(svc.url, 'PUT', `/v1/accounts/${accountId}/consents`, {
    token,
    body: {
      channel: 'call_center',
      actor: { type: 'staff', id: 'agent-7' },
      noticeVersion: 'v3',
      verification: 'account_pin',
      reference: 'CALL-20261203-0042',
      affirmative: true,
      changes,
      ...extra,
    },
  });
}

export function decide(svc: TestService, token: string, body: Record<string, unknown>): Promise<Reply> {
  return call(svc.url, 'POST', '/v1/decisions', { token, body });
}

/** `{ recipient }` for a purpose that must name one (the first registered recipient of an allowed kind); else `{}`. */
export function recipientFor(svc: TestService, purpose: string): { recipient?: string } {
  const { catalog } = svc.config;
  const kinds = (catalog.purposes.get(purpose) ?? catalog.exceptions.get(purpose))?.recipientKinds;
  const recipient = kinds && [...catalog.recipients.values()].find((r) => kinds.includes(r.kind))?.id;
  return recipient ? { recipient } : {};
}
