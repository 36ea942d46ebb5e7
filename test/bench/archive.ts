import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadKeys } from '../../src/platform/auth/keys';
import { issueToken } from '../../src/platform/auth/tokens';
import { loadConfig } from '../../src/platform/config';
import { createLogger } from '../../src/platform/logger';
import { startService } from '../../src/server';
import { sampleRss } from '../support/audit';
import { deleteRedisPrefix, dropDatabase } from '../support/database';
import { finished } from '../support/processes';
import { OPTGATE_CLI, ROOT } from './processes';
import { BATCH_CATEGORIES } from './scenarios';
import { BENCH_PURPOSE, resetDatabase } from './seed';

/**
 * Archival of one month of the log: `records` decision records (batch calls) written into a month
 * three months ago (an instance whose clock says so, with its signing job keeping the tree heads
 * up), then `optgate audit archive` with a retention of one month, as an operator runs it: the
 * month written to a file, verified, registered and dropped. Its time and peak RSS; then
 * `audit verify --db --archives`, the archive and the online log read as one.
 */
export interface ArchiveResult {
  readonly records: number;
  readonly writeSeconds: number;
  readonly archiveSeconds: number;
  readonly peakRssKiB: number;
  readonly fileBytes: number;
  readonly verifySeconds: number;
  readonly verified: boolean;
  readonly output: string;
}

const BATCH = 10_000;

export async function measureArchival(o: {
  databaseUrl: string;
  keysDir: string;
  redisPrefix: string;
  records: number;
  log: (message: string) => void;
}): Promise<ArchiveResult> {
  const u = new URL(o.databaseUrl);
  u.pathname = `${u.pathname}_archive`;
  const url = u.toString();
  const redisPrefix = `${o.redisPrefix}-archive`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-bench-archive-'));
  await resetDatabase(url);
  try {
    const now = new Date();
    const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 3, 10));
    const t0 = Date.now();
    const clock = () => new Date(month.getTime() + (Date.now() - t0));
    const env = {
      NODE_ENV: 'development',
      DATABASE_URL: url,
      KEYS_DIR: o.keysDir,
      REDIS_PREFIX: redisPrefix,
      PGUSER: process.env.PGUSER,
      LOG_LEVEL: 'warn',
    };
    const config = loadConfig({ ...env, PORT: '0', HOST: '127.0.0.1', RUN_WORKERS: 'true' });
    const service = await startService(config, { logger: createLogger('warn'), clock });
    let writeSeconds: number;
    try {
      // Issued here, not by `optgate token` (a staff action dated now, which every later record would follow).
      const token = await issueToken(await loadKeys(config.auth, config.env), config.auth, {
        subject: 'bench-archive',
        scopes: ['decisions'],
        purposes: [BENCH_PURPOSE],
        ttlSeconds: 6 * 3600,
      });
      const calls = Math.ceil(o.records / BATCH);
      o.log(`archival: writing ${calls} batch calls of ${BATCH} accounts into ${month.toISOString().slice(0, 7)}`);
      const started = performance.now();
      let next = 0;
      const worker = async () => {
        for (let call = next++; call < calls; call = next++) {
          const accountIds = Array.from({ length: BATCH }, (_, i) => `arch-${call}-${i}`);
          const r = await fetch(`${service.url}/v1/decisions/batch`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ purpose: BENCH_PURPOSE, categories: BATCH_CATEGORIES, accountIds }),
          });
          if (!r.ok) throw new Error(`archival: batch call ${call}: ${r.status} ${(await r.text()).slice(0, 300)}`);
        }
      };
      await Promise.all([worker(), worker()]);
      writeSeconds = (performance.now() - started) / 1000;
      // The signing job covers the month, as it would have long before the month is due.
      const sql = new pg.Client({ connectionString: config.db.url });
      await sql.connect();
      try {
        const covered = async () =>
          (
            await sql.query(
              `select exists (select 1 from audit_checkpoints c, audit_head h
               where c.seq = h.seq and c.root_hash is not null) as ok`,
            )
          ).rows[0].ok as boolean;
        while (!(await covered())) await new Promise((r) => setTimeout(r, 200));
      } finally {
        await sql.end();
      }
    } finally {
      await service.close();
    }

    o.log('archival: optgate audit archive (retention 1 month)');
    const cliEnv = { PATH: process.env.PATH ?? '', ...env, AUDIT_RETENTION_MONTHS: '1', AUDIT_ARCHIVE_DIR: dir };
    const started = performance.now();
    const child = spawn(process.execPath, [OPTGATE_CLI, 'audit', 'archive'], { env: cliEnv, cwd: ROOT });
    const rss = sampleRss(child.pid!, 200);
    const archived = await finished(child, 1_800_000);
    const archiveSeconds = (performance.now() - started) / 1000;
    const { peakKiB } = await rss.stop();
    if (archived.code !== 0) throw new Error(`optgate audit archive failed: ${archived.stderr.slice(0, 500)}`);
    const file = /\s(\S+\.ndjson)\s*$/m.exec(archived.stdout)?.[1];
    const fileBytes = file ? statSync(file).size : 0;

    o.log('archival: optgate audit verify --db --archives');
    const vStarted = performance.now();
    const verify = spawn(process.execPath, [OPTGATE_CLI, 'audit', 'verify', '--db', '--archives', dir], {
      env: cliEnv,
      cwd: ROOT,
    });
    const verified = await finished(verify, 1_800_000);
    return {
      records: o.records,
      writeSeconds,
      archiveSeconds,
      peakRssKiB: peakKiB,
      fileBytes,
      verifySeconds: (performance.now() - vStarted) / 1000,
      verified: verified.code === 0 && /RESULT: INTACT/.test(verified.stdout),
      output: `${archived.stdout}\n${verified.stdout}${verified.stderr}`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await dropDatabase(url);
    await deleteRedisPrefix(redisPrefix);
  }
}

export function archiveLines(a: ArchiveResult, int: (n: number) => string): string[] {
  return [
    `archival: one month of ${int(a.records)} decision records (written in ${a.writeSeconds.toFixed(1)} s) archived ` +
      `by optgate audit archive (paced as exports) in ${a.archiveSeconds.toFixed(1)} s = ` +
      `${int(a.records / a.archiveSeconds)} ` +
      `records/s (file ${(a.fileBytes / 2 ** 20).toFixed(1)} MiB written, verified, registered, partitions dropped), ` +
      `peak RSS ${(a.peakRssKiB / 1024).toFixed(0)} MiB`,
    `archive + online log verified as one (optgate audit verify --db --archives): ${a.verifySeconds.toFixed(1)} s, ` +
      `${a.verified ? 'INTACT' : 'FAILED'}`,
  ];
}
