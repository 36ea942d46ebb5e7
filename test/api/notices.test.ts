import { createHash } from 'node:crypto';
import { noticeRoutes } from '../../src/notices';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The notice at the point of sale: one version's text in the representation a channel can show (JSON, the exact
 * Markdown, rendered HTML), and the record that it was given to a subscriber, with its audit record.
 */

let svc: TestService;

beforeAll(async () => {
  svc = await startTestService();
});
afterAll(() => svc.stop());

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const v3 = () => svc.config.catalog.noticesByVersion.get('v3')!;

/** The body matches the schema the route documents for its status. */
function expectDocumented(spec: { responses: Record<number, { schema?: { safeParse(v: unknown): any } }> }, r: any) {
  const parsed = spec.responses[r.status]!.schema!.safeParse(r.body);
  expect(parsed.error?.issues ?? []).toEqual([]);
}

describe('GET /v1/notices/:version, by Accept', () => {
  const get = (accept?: string, version = 'v3') =>
    fetch(`${svc.url}/v1/notices/${version}`, { headers: accept ? { accept } : {} });

  it('JSON by default and for application/json, */* and application/*', async () => {
    for (const accept of [undefined, 'application/json', '*/*', 'application/*', 'text/html;q=0.1, */*']) {
      const r = await get(accept);
      expect({ accept, status: r.status, type: r.headers.get('content-type') }).toEqual({
        accept,
        status: 200,
        type: 'application/json; charset=utf-8',
      });
      expect(r.headers.get('vary')).toMatch(/\bAccept\b/i);
      const body = await r.json();
      expect(body).toMatchObject({ version: 'v3', sha256: v3().sha256, text: v3().text });
      expectDocumented(noticeRoutes.get, { status: 200, body });
    }
  });

  it('text/plain: the Markdown text exactly, whose SHA-256 is the notice sha256', async () => {
    const listed = (await call(svc.url, 'GET', '/v1/notices')).body.versions as { version: string; sha256: string }[];
    for (const { version, sha256: hash } of listed) {
      const r = await get('text/plain', version);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      expect(r.headers.get('vary')).toMatch(/\bAccept\b/i);
      const bytes = new Uint8Array(await r.arrayBuffer());
      expect(sha256(bytes)).toBe(hash);
      expect(Number(r.headers.get('content-length'))).toBe(bytes.length);
    }
    // The preferred of several, by quality.
    const preferred = await get('text/html;q=0.5, text/plain');
    expect(preferred.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(sha256(await preferred.text())).toBe(v3().sha256);
  });

  it('text/html: the text rendered, as one article carrying the version, its date and hash', async () => {
    const r = await get('text/html');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('vary')).toMatch(/\bAccept\b/i);
    // An API answer: nothing in it may load or run.
    expect(r.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await r.text();
    expect(html).toMatch(
      new RegExp(
        `^<article class="optgate-notice" data-version="v3" data-effective-at="2025-09-01T00:00:00.000Z" ` +
          `data-sha256="${v3().sha256}">\n`,
      ),
    );
    expect(html).toContain('<h1>Your privacy choices</h1>');
    expect(html).toContain('<strong>What this covers.</strong>');
    expect(html.trimEnd()).toMatch(/<\/article>$/);
    expect(html).not.toMatch(/<html|<script|\sstyle=/i);
  });

  it('anything else is 406 problem+json; an unknown version stays 404', async () => {
    for (const accept of ['application/xml', 'image/png', 'application/problem+json', 'text/csv']) {
      const r = await call(svc.url, 'GET', '/v1/notices/v3', { headers: { accept } });
      expect({ accept, status: r.status }).toEqual({ accept, status: 406 });
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.headers.get('vary')).toMatch(/\bAccept\b/i);
      expect(r.body).toMatchObject({
        type: 'urn:optgate:problem:not-acceptable',
        title: 'Not acceptable',
        status: 406,
        detail: 'A notice is available as application/json, text/plain, text/html.',
        requestId: r.headers.get('x-request-id'),
      });
    }
    const unknown = await call(svc.url, 'GET', '/v1/notices/v99', { headers: { accept: 'text/plain' } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.type).toBe('urn:optgate:problem:not-found');
  });

  it('/openapi.json describes the three representations, Vary and the 406', async () => {
    const op = (await call(svc.url, 'GET', '/openapi.json')).body.paths['/v1/notices/{version}'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['application/json', 'text/plain', 'text/html']);
    expect(op.responses['200'].headers.Vary).toBeDefined();
    expect(op.responses['406']).toEqual({ $ref: '#/components/responses/Problem406' });
    expect(op.responses['404']).toEqual({ $ref: '#/components/responses/Problem404' });
  });
});
