import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly headers: Record<string, string>;
  readonly body: string;
  /** The status this receiver answered with. */
  readonly status: number;
  /** When it came (ms since the epoch). */
  readonly at: number;
}

/**
 * A real HTTP receiver on 127.0.0.1: records every request and answers with what `answer` says (200 by default). It
 * can be stopped and started again on the same port, as a receiver that goes down and comes back.
 */
export class Receiver {
  readonly received: Received[] = [];
  answer: (body: string) => number = () => 200;
  private server: http.Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async start(): Promise<this> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const status = this.answer(body);
        this.received.push({ headers: req.headers as Record<string, string>, body, status, at: Date.now() });
        res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The parsed bodies of the requests answered 2xx, for the given account. */
  delivered(accountId?: string): { id: string; type: string; seq: number | null; data: Record<string, unknown> }[] {
    return this.received
      .filter((r) => r.status >= 200 && r.status < 300)
      .map((r) => JSON.parse(r.body))
      .filter((b) => accountId === undefined || b.data.accountId === accountId);
  }
}

/** Polls `check` until it returns something truthy, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
