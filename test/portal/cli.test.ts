import { PortalClient, textOf } from '../support/browser';
import { adminToken, createAccount } from '../support/fixtures';
import { startTestService, type TestService } from '../support/harness';
import { CLI, cliEnv, run } from '../support/processes';

/**
 * `npx optgate portal-link --account A-1`, through the built CLI (npm test builds dist/ first), against a running
 * service.
 */

let svc: TestService;
let env: Record<string, string>;

beforeAll(async () => {
  svc = await startTestService();
  // The CLI and the service share the database, the Redis prefix and the development keys.
  env = cliEnv(svc);
});
afterAll(() => svc.stop());

it('prints only a working, single-use sign-in URL, and audits that a link was issued', async () => {
  const accountId = await createAccount(svc, await adminToken(svc));
  const printed = await run(CLI, ['portal-link', '--account', accountId], env);
  expect(printed.stderr).toBe('');
  expect(printed.code).toBe(0);
  const url = printed.stdout.trim();
  expect(printed.stdout).toBe(`${url}\n`);
  expect(url).toMatch(new RegExp(`^${svc.url}/login\\?token=[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));

  const client = new PortalClient(svc.url);
  await client.signIn(url);
  expect(textOf((await client.get('/choices')).body)).toContain(`Signed in as account ${accountId}`);
  expect((await new PortalClient(svc.url).get(url)).status).toBe(401);

  const { rows } = await svc.sql.query(
    "select account_id, content from audit_records where type = 'staff_action' order by seq desc limit 1",
  );
  expect(rows[0].account_id).toBe(accountId);
  expect(JSON.parse(rows[0].content).data).toMatchObject({ action: 'portal_link_issued', ttlSeconds: 600 });
  // The audit does not keep the token, only its id.
  expect(rows[0].content).not.toContain(url.split('token=')[1]);
}, 30_000);

it('--base and --ttl are honoured; bad arguments exit 2 and print no link', async () => {
  const accountId = await createAccount(svc, await adminToken(svc));
  const based = await run(CLI, ['portal-link', '--account', accountId, '--ttl', '2m', '--base', `${svc.url}/`], {
    ...env,
    PORTAL_BASE_URL: 'https://portal.example',
  });
  expect(based.code).toBe(0);
  const token = based.stdout.trim().split('token=')[1]!;
  expect(based.stdout.startsWith(`${svc.url}/login?token=`)).toBe(true);
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
  expect(claims).toMatchObject({ sub: accountId, aud: svc.config.portal.tokenAudience });
  expect(claims.exp - claims.iat).toBe(120);

  for (const args of [
    ['portal-link'],
    ['portal-link', '--account', 'not an id!'],
    ['portal-link', '--account', accountId, '--ttl', '16m'],
  ]) {
    const r = await run(CLI, args, env);
    expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: '' });
    expect(r.stderr).toMatch(/--account|--ttl/);
  }
}, 30_000);
