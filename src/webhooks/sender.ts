import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { guardedLookup, hostOf, resolveAllowed, type UrlPolicy, UrlRefused } from './url-guard';

/** What one attempt came to: the receiver's status, or why there was none. */
export type AttemptResult =
  | { readonly ok: true; readonly status: number }
  | { readonly ok: false; readonly status: number | null; readonly error: string };

export interface SendRequest {
  readonly url: string;
  readonly secret: string;
  /** The `webhook-id`. */
  readonly id: string;
  readonly body: string;
  readonly now: Date;
}

/** The three Standard Webhooks headers: HMAC-SHA256 over `id.timestamp.body` with the endpoint's secret. */
export function signatureHeaders(secret: string, id: string, now: Date, body: string): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, now, body),
  };
}

/**
 * One attempt: POST the signed body, 2xx is delivered, anything else (another status, a refused or unreachable
 * address, a timeout) is a failure. The connection goes only to addresses the policy allows, checked as resolved.
 * Redirects are not followed (a 3xx is a failure): a redirect could lead anywhere.
 */
export async function send(req: SendRequest, policy: UrlPolicy, timeoutMs: number): Promise<AttemptResult> {
  try {
    const url = new URL(req.url);
    // Node connects to an IP literal without calling `lookup`: checked here instead.
    if (isIP(hostOf(url))) await resolveAllowed(hostOf(url), policy);
    const status = await post(url, req, policy, timeoutMs);
    return status >= 200 && status < 300 ? { ok: true, status } : { ok: false, status, error: `HTTP ${status}` };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const error = err instanceof UrlRefused ? `refused: ${e.message}` : (e.code ?? e.name ?? 'error');
    return { ok: false, status: null, error: error.slice(0, 200) };
  }
}

function post(url: URL, req: SendRequest, policy: UrlPolicy, timeoutMs: number): Promise<number> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.request(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'optgate-webhooks',
          ...signatureHeaders(req.secret, req.id, req.now, req.body),
        },
        lookup: guardedLookup(policy) as unknown as http.RequestOptions['lookup'],
        signal: AbortSignal.timeout(timeoutMs),
        agent: false,
      },
      (res) => {
        // The answer's body is not needed: read and dropped, so that the socket is released.
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    request.on('error', (err) => {
      // The lookup's refusal arrives wrapped by the socket: keep its reason.
      reject(err);
    });
    request.end(req.body);
  });
}
