import { rm } from 'node:fs/promises';
import {
  ALL_PURPOSES,
  deleteRedisPrefix,
  exportAndWait,
  fetchExport,
  http,
  processEnv,
  processToken,
  tempDir,
  verifyFile,
} from '../support/audit';
import { dropDatabase } from '../support/database';
import { finished, freePort, startProcess } from '../support/processes';

/**
 * The export path as an operator runs it: the BUILT service (npm start, the Docker image) asked
 * for an export over HTTP, its worker writing it, the file and manifest downloaded and verified
 * with the built CLI. export-verify.test.ts covers the same path in-process (jest's swc transform),
 * which cannot see a fault of tsc's CommonJS output.
 */

const env = processEnv({ RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '1000' });
let child: Awaited<ReturnType<typeof startProcess>> | undefined;
let dir: string | undefined;

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await finished(child);
  }
  await dropDatabase(env.DATABASE_URL);
  await deleteRedisPrefix(env.REDIS_PREFIX);
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Regression: while `exportRequestSchema` was exported from src/audit/audit.router.ts and used inside
// `auditRouter(audit, exports, verifier)`, tsc's CommonJS output read it as `exports.exportRequestSchema`
// from the ExportService parameter that shadowed CommonJS `exports`: every POST /v1/audit/exports of
// the built service answered 503 ("Cannot read properties of undefined (reading 'safeParse')"), while
// jest (swc) passed. Found by this test at 679cb3f; fixed in 45a8766.
it('the built service takes POST /v1/audit/exports, runs it, and the download verifies with the CLI', async () => {
  const port = await freePort();
  child = await startProcess(env, port);
  const base = `http://127.0.0.1:${port}`;
  const token = await processToken(env, 'decisions consents:write accounts:write audit:read', ALL_PURPOSES);
  expect(
    (await http(base, 'POST', '/v1/accounts', token, { accounts: [{ accountId: 'proc-1', status: 'active' }] })).status,
  ).toBe(200);
  for (let i = 0; i < 5; i++)
    expect(
      (
        await http(base, 'POST', '/v1/decisions', token, {
          accountId: 'proc-1',
          purpose: 'billing',
          categories: ['billing_info'],
        })
      ).status,
    ).toBe(200);

  const status = await exportAndWait(base, token, { format: 'ndjson' }, 20_000);
  expect(status).toMatchObject({ status: 'completed', rows: 7 });
  dir = await tempDir();
  const got = await fetchExport(base, token, status.exportId, dir, 'ndjson');
  const r = await verifyFile(got.file, got.manifest, got.jwks);
  expect(r.stdout).toMatch(/RESULT: INTACT/);
  expect(r.code).toBe(0);
});
