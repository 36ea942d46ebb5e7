import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { leafHash, verifyInclusion } from '../../src/audit';
import { type ExportResult, exportAndVerify } from './audit-export';
import { quantile } from './probes';
import { OPTGATE_CLI, ROOT } from './processes';
import { BATCH_CATEGORIES } from './scenarios';
import { BENCH_PURPOSE, type SeedResult } from './seed';

/**
 * The audit log at a fixed size, measured the same way every run: exactly `records` decision
 * records written by batch calls after a mark, then (with nothing else running) the tree heads
 * that covered them, an export of exactly those records (a time-range export from the mark),
 * inclusion proofs served by the API at that size, and proofs verified by the CLI and in-process.
 */

export interface AuditLogResult {
  readonly records: number;
  readonly writeSeconds: number;
  /** Tree heads signed while the records were written, per second. */
  readonly treeHeadsPerSecond: number;
  /** From the last record written to a signed tree head covering it. */
  readonly treeLagSeconds: number;
  readonly treeSize: number;
  readonly export: ExportResult;
  /** GET /v1/audit/proofs/inclusion, one at a time, random records. */
  readonly proofMs: readonly number[];
  readonly proofHashes: number;
  /** `optgate audit verify-proof FILE` per file (a process each). */
  readonly cliVerifySeconds: number;
  /** verifyInclusion in one process, proofs per second. */
  readonly libraryVerifyPerSecond: number;
}

const headers = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

async function json<T>(url: string, token: string, init: RequestInit = {}): Promise<T> {
  const r = await fetch(url, { ...init, headers: headers(token) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${r.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

async function headSeq(databaseUrl: string): Promise<number> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    return Number((await c.query('select seq from audit_head')).rows[0].seq);
  } finally {
    await c.end();
  }
}

async function treeHeadsSince(databaseUrl: string, since: Date): Promise<number> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query(
      'select count(*)::int as n from audit_checkpoints where signed_at >= $1 and root_hash is not null',
      [since],
    );
    return rows[0].n;
  } finally {
    await c.end();
  }
}

export async function measureAuditLog(o: {
  url: string;
  databaseUrl: string;
  decisionsToken: string;
  auditToken: string;
  data: SeedResult;
  records: number;
  batchSize: number;
  env: NodeJS.ProcessEnv;
  log: (message: string) => void;
}): Promise<AuditLogResult> {
  const { url, data } = o;
  const size = Math.min(o.batchSize, data.accountIds.length);
  const calls = Math.ceil(o.records / size);
  // The mark: the export below takes every record from here (the records of this phase and its own request).
  const mark = new Date();
  await new Promise((r) => setTimeout(r, 5));
  o.log(`audit log: writing ${calls} batch calls of ${size} accounts`);
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    for (let call = next++; call < calls; call = next++) {
      const from = (call * size) % data.accountIds.length;
      const accountIds = [...data.accountIds.slice(from, from + size)];
      if (accountIds.length < size) accountIds.push(...data.accountIds.slice(0, size - accountIds.length));
      await json(`${url}/v1/decisions/batch`, o.decisionsToken, {
        method: 'POST',
        body: JSON.stringify({ purpose: BENCH_PURPOSE, categories: BATCH_CATEGORIES, accountIds }),
      });
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const writeSeconds = (performance.now() - started) / 1000;
  const written = Date.now();
  const head = await headSeq(o.databaseUrl);
  const latest = async () =>
    (await json<{ treeSize: number }>(`${url}/v1/audit/tree-heads/latest`, o.auditToken).catch(() => undefined))
      ?.treeSize ?? 0;
  while ((await latest()) < head) await new Promise((r) => setTimeout(r, 50));
  const treeLagSeconds = (Date.now() - written) / 1000;
  const treeHeadsPerSecond = (await treeHeadsSince(o.databaseUrl, mark)) / (writeSeconds + treeLagSeconds);

  o.log(`audit log: exporting the ${calls * size} records from the mark, alone, and verifying the file`);
  const exported = await exportAndVerify(url, o.auditToken, o.env, { from: mark.toISOString() });

  o.log('audit log: inclusion proofs');
  const treeSize = await latest();
  const proofMs: number[] = [];
  const proofs: { leafIndex: number; treeSize: number; recordHash: string; hashes: string[]; rootHash: string }[] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-bench-proofs-'));
  try {
    for (let i = 0; i < 200; i++) {
      const seq = 1 + Math.floor((((i * 2654435761) % 2 ** 32) / 2 ** 32) * treeSize);
      const t0 = performance.now();
      const proof = await json<(typeof proofs)[number] & { treeHead: string }>(
        `${url}/v1/audit/proofs/inclusion?seq=${seq}&treeSize=${treeSize}`,
        o.auditToken,
      );
      proofMs.push(performance.now() - t0);
      proofs.push(proof);
      if (i < 10) writeFileSync(path.join(dir, `proof-${i}.json`), JSON.stringify(proof));
    }
    writeFileSync(path.join(dir, 'jwks.json'), await (await fetch(`${url}/.well-known/jwks.json`)).text());
    const cliStarted = performance.now();
    for (let i = 0; i < 10; i++) {
      await promisify(execFile)(
        process.execPath,
        [
          OPTGATE_CLI,
          'audit',
          'verify-proof',
          path.join(dir, `proof-${i}.json`),
          '--jwks',
          path.join(dir, 'jwks.json'),
        ],
        { cwd: ROOT, env: o.env },
      );
    }
    const cliVerifySeconds = (performance.now() - cliStarted) / 1000 / 10;
    const libStarted = performance.now();
    let verified = 0;
    for (let round = 0; round < 50; round++) {
      for (const p of proofs) {
        const ok = verifyInclusion(
          p.leafIndex,
          p.treeSize,
          leafHash(p.recordHash),
          p.hashes.map((h) => Buffer.from(h, 'hex')),
          Buffer.from(p.rootHash, 'hex'),
        );
        if (!ok) throw new Error(`a proof from the API did not verify (leaf ${p.leafIndex})`);
        verified++;
      }
    }
    const libraryVerifyPerSecond = verified / ((performance.now() - libStarted) / 1000);
    return {
      records: calls * size,
      writeSeconds,
      treeHeadsPerSecond,
      treeLagSeconds,
      treeSize,
      export: exported,
      proofMs,
      proofHashes: Math.max(...proofs.map((p) => p.hashes.length)),
      cliVerifySeconds,
      libraryVerifyPerSecond,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Requests `n` exports at once, each by its own client (the per-client limit is 2), of the records from `from`. */
export async function requestExports(url: string, tokens: readonly string[], from: string): Promise<string[]> {
  return Promise.all(
    tokens.map(async (token) => {
      const r = await json<{ exportId: string }>(`${url}/v1/audit/exports`, token, {
        method: 'POST',
        body: JSON.stringify({ format: 'ndjson', from }),
      });
      return r.exportId;
    }),
  );
}

export function auditLogLines(a: AuditLogResult, int: (n: number) => string): string[] {
  const e = a.export;
  return [
    `audit log (fixed size, measured alone): ${int(a.records)} decision records written by batch calls in ` +
      `${a.writeSeconds.toFixed(1)} s; tree heads signed ${a.treeHeadsPerSecond.toFixed(2)}/s meanwhile; the last ` +
      `record covered by a signed tree head ${a.treeLagSeconds.toFixed(1)} s after it was written`,
    `audit export: ${int(e.rows)} rows (the records from the mark), ${(e.bytes / 2 ** 20).toFixed(1)} MiB in ` +
      `${e.exportSeconds.toFixed(1)} s = ${int(e.rows / e.exportSeconds)} rows/s (request to completed, ndjson, ` +
      'paced at EXPORT_PACE_PERCENT (default 50), run by a worker process, nothing else running)',
    `audit verify: ${int(e.rows)} rows in ${e.verifySeconds.toFixed(1)} s = ${int(e.rows / e.verifySeconds)} rows/s ` +
      `(optgate audit verify FILE --manifest --jwks: ${e.verified ? 'INTACT' : 'FAILED'})`,
    `inclusion proofs at ${int(a.treeSize)} records (GET /v1/audit/proofs/inclusion, one at a time, 200 random): ` +
      `p50 ${quantile(a.proofMs, 0.5).toFixed(1)} ms, p99 ${quantile(a.proofMs, 0.99).toFixed(1)} ms, ` +
      `${a.proofHashes} hashes at most`,
    `proof verification: optgate audit verify-proof ${a.cliVerifySeconds.toFixed(2)} s per file (a process each, ` +
      `mostly Node's start-up); in one process ${int(a.libraryVerifyPerSecond)} proofs/s`,
  ];
}
