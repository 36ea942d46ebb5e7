import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP front for the client's failure tests: it fakes only the failure. The next `failures` requests are answered
 * with `status` (a problem document, `Retry-After` if set); every other request is forwarded to the real service and
 * its answer passed back.
 */
export class FlakyFront {
  failures = 0;
  status = 503;
  retryAfter?: string;
  /** Every request seen, with the time it came. */
  readonly seen: { path: string; at: number }[] = [];
  private server!: http.Server;
  url = '';

  constructor(private readonly target: string) {}

  async start(): Promise<this> {
    this.server = http.createServer(async (req, res) => {
      this.seen.push({ path: req.url ?? '', at: Date.now() });
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      if (this.failures > 0) {
        this.failures--;
        res.writeHead(this.status, {
          'content-type': 'application/problem+json',
          ...(this.retryAfter ? { 'retry-after': this.retryAfter } : {}),
        });
        res.end(JSON.stringify({ type: 'urn:optgate:problem:unavailable', title: 'Service unavailable', status: 503 }));
        return;
      }
      const answer = await fetch(this.target + req.url, {
        method: req.method,
        headers: Object.fromEntries(
          ['authorization', 'content-type'].flatMap((h) => (req.headers[h] ? [[h, String(req.headers[h])]] : [])),
        ),
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      });
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
      res.end(Buffer.from(await answer.arrayBuffer()));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
