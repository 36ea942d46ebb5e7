import { execFile } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { OPTGATE_CLI, ROOT } from './processes';

export interface ExportResult {
  readonly rows: number;
  readonly bytes: number;
  /** From the request to status completed. */
  readonly exportSeconds: number;
  readonly verifySeconds: number;
  readonly verified: boolean;
  readonly verifyOutput: string;
}

/**
 * Exports the audit log (or the records from `filters.from`) through the API (a BullMQ job), downloads the file
 * and its manifest, and verifies them offline with `optgate audit verify`: rows per second for
 * both, measured end to end.
 */
export async function exportAndVerify(
  url: string,
  token: string,
  env: NodeJS.ProcessEnv,
  filters: { from?: string } = {},
): Promise<ExportResult> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const started = process.hrtime.bigint();
  const created = await fetch(`${url}/v1/audit/exports`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ format: 'ndjson', ...filters }),
  });
  if (created.status !== 202) throw new Error(`export request: ${created.status} ${await created.text()}`);
  const { exportId } = (await created.json()) as { exportId: string };
  let status: { status: string; rows: number; bytes: number; error?: string };
  for (;;) {
    status = (await (await fetch(`${url}/v1/audit/exports/${exportId}`, { headers })).json()) as typeof status;
    if (status.status === 'completed' || status.status === 'failed') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const exportSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (status.status !== 'completed') throw new Error(`export failed: ${status.error}`);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-bench-export-'));
  try {
    const file = path.join(dir, 'audit.ndjson');
    const download = await fetch(`${url}/v1/audit/exports/${exportId}/download`, { headers });
    await pipeline(Readable.fromWeb(download.body as never), createWriteStream(file));
    writeFileSync(
      path.join(dir, 'manifest.jws'),
      await (await fetch(`${url}/v1/audit/exports/${exportId}/manifest`, { headers })).text(),
    );
    writeFileSync(path.join(dir, 'jwks.json'), await (await fetch(`${url}/.well-known/jwks.json`)).text());
    const verifyStarted = process.hrtime.bigint();
    let verifyOutput: string;
    let verified = true;
    try {
      ({ stdout: verifyOutput } = await promisify(execFile)(
        process.execPath,
        [
          OPTGATE_CLI,
          'audit',
          'verify',
          file,
          '--manifest',
          path.join(dir, 'manifest.jws'),
          '--jwks',
          path.join(dir, 'jwks.json'),
        ],
        { env, cwd: ROOT, timeout: 600_000 },
      ));
    } catch (err) {
      verified = false;
      verifyOutput = String((err as { stdout?: string }).stdout ?? err);
    }
    const verifySeconds = Number(process.hrtime.bigint() - verifyStarted) / 1e9;
    return { rows: status.rows, bytes: statSync(file).size, exportSeconds, verifySeconds, verified, verifyOutput };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
