import { rm, stat } from 'node:fs/promises';
import pg from 'pg';
import {
  contentOf,
  deleteRedisPrefix,
  exportAndWait,
  fetchExport,
  processEnv,
  processToken,
  recordHash,
  rssKiB,
  runCliMeasured,
  sampleRss,
  tempDir,
  writeFormat1Chain,
} from '../support/audit';
import { dropDatabase } from '../support/database';
import { finished, freePort, startProcess } from '../support/processes';

/**
 * An export of 1,000,000 audit records runs in bounded memory. The built service runs as a child
 * process (its own heap), its resident set size sampled with `ps` every 200 ms while it writes the
 * export, and again while it serves the download; then the built CLI verifies the downloaded file,
 * streaming, its RSS sampled too. The bound asserted (256 MiB of growth, whatever the row count)
 * is well under half the export's size (~620 MiB), and the growth must not rise along the export.
 */

const ROWS = 1_000_000;
const MiB = 1024 * 1024;
/** The fixed bound on the service's RSS growth: well under half the export's size. */
const BOUND_KIB = 256 * 1024;
// The export alone: the million records are written behind the service's back, and the signing job would
// otherwise build the Merkle tree over all of them at the same time (that catch-up is measured by the bench); the
// verification and the charts' counting jobs would read them too.
// A V8 heap capped well under the export's size: an export that held its rows would die of it. Without a cap V8
// grows its heap lazily to whatever the machine allows, and the RSS says more about the GC than about the export.
const env = processEnv({
  RUN_WORKERS: 'true',
  AUDIT_CHECKPOINT_INTERVAL_MS: '86400000',
  AUDIT_VERIFY_INTERVAL_MS: '86400000',
  AUDIT_ROLLUP_INTERVAL_MS: '86400000',
  // Unpaced: the test measures the export's memory, not how it shares the machine.
  EXPORT_PACE_PERCENT: '100',
  NODE_OPTIONS: '--max-old-space-size=160',
});
let dir: string;
let child: Awaited<ReturnType<typeof startProcess>> | undefined;

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await dropDatabase(env.DATABASE_URL);
  await deleteRedisPrefix(env.REDIS_PREFIX);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The peak of each quarter of a series. */
const quarters = (series: number[]) =>
  [0, 1, 2, 3].map((q) =>
    Math.max(0, ...series.slice(Math.floor((q * series.length) / 4), Math.floor(((q + 1) * series.length) / 4))),
  );

it('exports 1,000,000 records (~620 MiB) with the service RSS growing by less than 256 MiB and not with the ' +
  'rows; the file verifies, streaming', async () => {
  const port = await freePort();
  child = await startProcess(env, port);
  const base = `http://127.0.0.1:${port}`;
  const token = await processToken(env, 'audit:read', []);
  dir = await tempDir();

  const sql = new pg.Pool({ connectionString: env.DATABASE_URL, max: 1 });
  sql.on('error', () => undefined);
  let t = Date.now();
  try {
    await writeFormat1Chain(sql, ROWS, new Date(Date.now() - 86_400_000).toISOString());
    // The chain as the service wrote it before audit format 2 (plain rows, format 1 hashes): an upgraded database.
    const { rows: stored } = await sql.query('select * from audit_records where seq = any($1) order by seq', [
      [1, 2, 3, 499999, 500000, 500001],
    ]);
    const sample = stored.map((r) => ({ seq: Number(r.seq), content: r.content, prevHash: r.prev_hash, hash: r.hash }));
    expect(sample[0]!.prevHash).toBe('0'.repeat(64));
    for (const [i, r] of sample.entries()) {
      expect(contentOf(JSON.parse(r.content))).toBe(r.content);
      expect(recordHash(r.prevHash, r.content, false)).toBe(r.hash);
      const prev = sample[i - 1];
      if (prev?.seq === r.seq - 1) expect(r.prevHash).toBe(prev.hash);
    }
    expect(Number((await sql.query('select seq from audit_head')).rows[0].seq)).toBe(ROWS);
  } finally {
    await sql.end();
  }
  const appendMs = Date.now() - t;

  // Baseline: the idle service after start-up.
  let baselineKiB = 0;
  for (let i = 0; i < 5; i++) {
    baselineKiB = Math.max(baselineKiB, (await rssKiB(child.pid!)) ?? 0);
    await new Promise((r) => setTimeout(r, 100));
  }

  t = Date.now();
  const exporting = sampleRss(child.pid!, 200);
  let status: Awaited<ReturnType<typeof exportAndWait>>;
  try {
    status = await exportAndWait(base, token, { format: 'ndjson' }, 170_000, 500);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nservice log:\n${child.logs()}`);
  } finally {
    await exporting.stop();
  }
  const exportRss = await exporting.stop();
  const exportMs = Date.now() - t;

  t = Date.now();
  const downloading = sampleRss(child.pid!, 200);
  let got: Awaited<ReturnType<typeof fetchExport>>;
  try {
    got = await fetchExport(base, token, status.exportId, dir, 'ndjson');
  } finally {
    await downloading.stop();
  }
  const downloadRss = await downloading.stop();
  const downloadMs = Date.now() - t;
  const bytes = (await stat(got.file)).size;

  child.kill('SIGTERM');
  await finished(child);

  t = Date.now();
  const verified = await runCliMeasured(
    ['audit', 'verify', got.file, '--manifest', got.manifest, '--jwks', got.jwks],
    {},
    170_000,
  );
  const verifyMs = Date.now() - t;

  const mb = (kib: number) => (kib / 1024).toFixed(1);
  console.log(
    [
      `audit export memory test:`,
      `  chain    ${ROWS.toLocaleString('en')} records written in ${(appendMs / 1000).toFixed(1)} s`,
      `  export   ${status.rows.toLocaleString('en')} rows, ${(status.bytes / MiB).toFixed(1)} MiB in ` +
        `${(exportMs / 1000).toFixed(1)} s (${Math.round(status.rows / (exportMs / 1000)).toLocaleString('en')} ` +
        `rows/s)`,
      `           service RSS baseline ${mb(baselineKiB)} MiB, peak ${mb(exportRss.peakKiB)} MiB, growth ` +
        `${mb(exportRss.peakKiB - baselineKiB)} MiB (${exportRss.samples} samples)`,
      `           RSS by quarter of the export (peak MiB): ${quarters(exportRss.series).map(mb).join(', ')}`,
      `  download ${(bytes / MiB).toFixed(1)} MiB in ${(downloadMs / 1000).toFixed(1)} s, service RSS peak ` +
        `${mb(downloadRss.peakKiB)} MiB, growth ${mb(downloadRss.peakKiB - baselineKiB)} MiB`,
      `           RSS by quarter of the download (peak MiB): ${quarters(downloadRss.series).map(mb).join(', ')}`,
      `  verify   ${(verifyMs / 1000).toFixed(1)} s ` +
        `(${Math.round(status.rows / (verifyMs / 1000)).toLocaleString('en')} rows/s), CLI RSS peak ` +
        `${mb(verified.peakKiB)} MiB`,
    ].join('\n'),
  );

  // The records, and the export request's own staff_action record appended after them.
  expect(status.rows).toBe(ROWS + 1);
  expect(status.bytes).toBe(bytes);
  expect(bytes).toBeGreaterThan(300 * MiB);
  expect(exportRss.samples).toBeGreaterThan(5);
  // Measured with the heap capped at 160 MiB: 85 MiB for the export, 108 MiB for the download, reached in the
  // first quarter (V8 collects lazily), flat after that. The bound leaves room for other machines' GC heuristics.
  expect(exportRss.peakKiB - baselineKiB).toBeLessThan(BOUND_KIB);
  expect(downloadRss.peakKiB - baselineKiB).toBeLessThan(BOUND_KIB);
  // And it does not grow with the rows: the second half of the export holds no more than the first.
  const [q1, q2, q3, q4] = quarters(exportRss.series);
  expect(Math.max(q3!, q4!) - Math.max(q1!, q2!)).toBeLessThan(64 * 1024);

  expect(verified.stderr).toBe('');
  expect(verified.stdout).toMatch(new RegExp(`records\\s+${ROWS + 1} ndjson records \\(seq 1 … ${ROWS + 1}\\)`));
  expect(verified.stdout).toMatch(/RESULT: INTACT/);
  expect(verified.code).toBe(0);
  // Streaming: the verifier holds far less than the file.
  expect(verified.peakKiB).toBeLessThan(250 * 1024);
}, 300_000);
