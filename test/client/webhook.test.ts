import { randomBytes } from 'node:crypto';
import { verifyWebhook, WebhookVerificationFailed } from 'optgate/client';
import { Webhook } from 'standardwebhooks';

/** verifyWebhook, with deliveries signed by the standardwebhooks package itself. */

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const body = JSON.stringify({ type: 'consent.changed', data: { accountId: 'A-1001', kind: 'revoked' } });

function signed(payload: string, at = new Date(), id = `msg_${randomBytes(8).toString('hex')}`) {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, at, payload),
  };
}

it('returns the payload of a good delivery (raw body as text or bytes; plain headers or fetch Headers)', () => {
  const headers = signed(body);
  expect(verifyWebhook(secret, body, headers)).toEqual(JSON.parse(body));
  expect(verifyWebhook(secret, Buffer.from(body), new Headers(headers))).toEqual(JSON.parse(body));
});

it('refuses a tampered body, a tampered id, another secret and missing headers', () => {
  const headers = signed(body);
  const fails =
    (b: string, h: Record<string, string>, s = secret) =>
    () =>
      verifyWebhook(s, b, h);
  expect(fails(body.replace('revoked', 'granted'), headers)).toThrow(WebhookVerificationFailed);
  expect(fails(body, { ...headers, 'webhook-id': 'msg_other' })).toThrow(WebhookVerificationFailed);
  expect(fails(body, headers, `whsec_${randomBytes(32).toString('base64')}`)).toThrow(WebhookVerificationFailed);
  expect(fails(body, { 'webhook-id': headers['webhook-id'] })).toThrow(WebhookVerificationFailed);
});

it('refuses an old or a future timestamp (beyond five minutes), even when correctly signed', () => {
  const old = signed(body, new Date(Date.now() - 10 * 60_000));
  expect(() => verifyWebhook(secret, body, old)).toThrow(/too old/);
  const future = signed(body, new Date(Date.now() + 10 * 60_000));
  expect(() => verifyWebhook(secret, body, future)).toThrow(/too new/);
  // Within the tolerance.
  expect(verifyWebhook(secret, body, signed(body, new Date(Date.now() - 60_000)))).toEqual(JSON.parse(body));
});
