import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { RouteSpec } from '../../src/platform/http/route';
import { API_ROUTES } from '../../src/routes';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';
import { ROOT } from '../support/processes';

/**
 * /openapi.json is generated from the route table. Checked three ways: Redocly's recommended rules
 * find nothing; every operation in the table is mounted; and real answers match the documented
 * response schemas, so the description cannot drift from the service.
 */

let svc: TestService;
let admin: string;

beforeAll(async () => {
  svc = await startTestService();
  admin = await adminToken(svc);
});
afterAll(() => svc.stop());

const byId = (operationId: string): RouteSpec => {
  const spec = API_ROUTES.find((r) => r.operationId === operationId);
  if (!spec) throw new Error(`no operation ${operationId}`);
  return spec;
};

/** The body matches the schema documented for its status. */
function expectDocumented(operationId: string, r: { status: number; body: unknown }) {
  const schema = byId(operationId).responses[r.status]?.schema;
  if (!schema) throw new Error(`${operationId} documents no JSON answer for ${r.status}: ${JSON.stringify(r.body)}`);
  const parsed = schema.safeParse(r.body);
  if (!parsed.success) throw new Error(`${operationId} ${r.status}: ${JSON.stringify(parsed.error.issues)}`);
}

it('passes `redocly lint` (its recommended rules) with no error and no warning', async () => {
  const doc = await call(svc.url, 'GET', '/openapi.json');
  expect(doc.status).toBe(200);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'optgate-openapi-'));
  const file = path.join(dir, 'openapi.json');
  await writeFile(file, JSON.stringify(doc.body));
  const { stdout } = await promisify(execFile)(
    path.join(ROOT, 'node_modules/.bin/redocly'),
    ['lint', file, '--format=json'],
    { env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } },
  );
  const report = JSON.parse(stdout) as { totals: object; problems: { ruleId: string; message: string }[] };
  expect(report.problems.map((p) => `${p.ruleId}: ${p.message}`)).toEqual([]);
  expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
});

it('describes every operation of the route table, with an operationId, security and its parameters', async () => {
  const doc = (await call(svc.url, 'GET', '/openapi.json')).body;
  for (const r of API_ROUTES) {
    const op = doc.paths[r.path]?.[r.method];
    expect(op).toMatchObject({ operationId: r.operationId, security: r.scopes ? [{ bearer: r.scopes }] : [] });
    for (const name of r.path.match(/\{(\w+)\}/g) ?? []) {
      expect(op.parameters).toContainEqual(
        expect.objectContaining({ name: name.slice(1, -1), in: 'path', required: true }),
      );
    }
  }
  expect(new Set(API_ROUTES.map((r) => r.operationId)).size).toBe(API_ROUTES.length);
  // Request bodies are the zod schemas that validate them.
  const decision = doc.paths['/v1/decisions'].post.requestBody.content['application/json'].schema;
  expect(decision.required).toEqual(expect.arrayContaining(['accountId', 'purpose', 'categories']));
  expect(decision.additionalProperties).toBe(false);
});

it('mounts every operation: a secured one without a token is 401, a public one answers', async () => {
  for (const r of API_ROUTES) {
    const p = r.path.replace('{accountId}', 'A-1').replace('{id}', crypto.randomUUID()).replace('{version}', 'v3');
    const res = await call(svc.url, r.method.toUpperCase(), p);
    expect([r.operationId, res.status]).toEqual([r.operationId, r.scopes ? 401 : 200]);
  }
});

it('answers what it documents, operation by operation', async () => {
  const id = await createAccount(svc, admin);
  const body = (b: unknown) => ({ token: admin, body: b });
  expectDocumented(
    'upsertAccounts',
    await call(svc.url, 'POST', '/v1/accounts', body({ accounts: [{ accountId: id, status: 'active' }] })),
  );
  expectDocumented(
    'recordConsents',
    await putConsents(svc, admin, id, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
      { purpose: 'ad_targeting', category: 'name', choice: 'revoke' },
    ]),
  );
  expectDocumented('getConsents', await call(svc.url, 'GET', `/v1/accounts/${id}/consents`, { token: admin }));
  expectDocumented('listNotices', await call(svc.url, 'GET', '/v1/notices'));
  expectDocumented('getNotice', await call(svc.url, 'GET', '/v1/notices/v3'));
  for (const categories of [['web_browsing_history'], ['web_browsing_history', 'name']]) {
    const decision = await call(
      svc.url,
      'POST',
      '/v1/decisions',
      body({ accountId: id, purpose: 'ad_targeting', categories }),
    );
    expectDocumented('decide', decision);
  }
  expectDocumented(
    'decideBatch',
    await call(
      svc.url,
      'POST',
      '/v1/decisions/batch',
      body({ purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds: [id, 'A-nobody'] }),
    ),
  );
  expectDocumented('listConsentChanges', await call(svc.url, 'GET', '/v1/consent-changes', { token: admin }));
  expectDocumented(
    'listAuditEvents',
    await call(svc.url, 'GET', '/v1/audit/events?limit=1000&include=consents', { token: admin }),
  );
  expectDocumented('listAuditCheckpoints', await call(svc.url, 'GET', '/v1/audit/checkpoints', { token: admin }));
  const requested = await call(svc.url, 'POST', '/v1/audit/exports', body({ format: 'ndjson', accountId: id }));
  expectDocumented('requestAuditExport', requested);
  expectDocumented(
    'getAuditExport',
    await call(svc.url, 'GET', `/v1/audit/exports/${requested.body.exportId}`, { token: admin }),
  );
  expectDocumented('health', await call(svc.url, 'GET', '/healthz'));
  expectDocumented('ready', await call(svc.url, 'GET', '/readyz'));
  expectDocumented('jwks', await call(svc.url, 'GET', '/.well-known/jwks.json'));
});

it('documents the problem statuses an operation can answer', async () => {
  const doc = (await call(svc.url, 'GET', '/openapi.json')).body;
  expect(Object.keys(doc.paths['/v1/decisions'].post.responses).sort()).toEqual(
    ['200', '400', '401', '403', '413', '415', '422', '431', '503'].sort(),
  );
  expect(doc.paths['/v1/decisions'].post.responses['422']).toEqual({ $ref: '#/components/responses/Problem422' });
});
