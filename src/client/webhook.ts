import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { OptgateError } from './errors';

/** The Standard Webhooks headers of a delivery (names lower-case, as Node gives them). */
export interface WebhookHeaders {
  readonly 'webhook-id'?: string | string[];
  readonly 'webhook-timestamp'?: string | string[];
  readonly 'webhook-signature'?: string | string[];
  readonly [name: string]: string | string[] | undefined;
}

/** A delivery that does not verify: a bad or missing signature, or a timestamp more than five minutes off. */
export class WebhookVerificationFailed extends OptgateError {
  override readonly name: string = 'WebhookVerificationFailed';
}

/**
 * Verifies a webhook delivery (Standard Webhooks: HMAC-SHA256 over `id.timestamp.body` with the `whsec_…` secret,
 * compared in constant time, timestamp within five minutes) and returns its parsed JSON payload. `body` must be the
 * raw body as received (bytes or text), not a re-serialised object. Throws WebhookVerificationFailed otherwise.
 */
export function verifyWebhook(secret: string, body: string | Buffer, headers: WebhookHeaders | Headers): unknown {
  const get = (name: string): string => {
    const value = headers instanceof Headers ? headers.get(name) : headers[name];
    return (Array.isArray(value) ? value[0] : value) ?? '';
  };
  try {
    return new Webhook(secret).verify(body, {
      'webhook-id': get('webhook-id'),
      'webhook-timestamp': get('webhook-timestamp'),
      'webhook-signature': get('webhook-signature'),
    });
  } catch (err) {
    if (err instanceof WebhookVerificationError) throw new WebhookVerificationFailed(err.message, { cause: err });
    throw new WebhookVerificationFailed('The webhook could not be verified', { cause: err });
  }
}
