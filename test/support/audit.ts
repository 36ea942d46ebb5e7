import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CompactSign, generateKeyPair } from 'jose';
import pg from 'pg';
import { canonicalJson, GENESIS_HASH, type Json, readRecords } from '../../src/audit';
import { loadKeys } from '../../src/platform/auth/keys';
import { issueToken } from '../../src/platform/auth/tokens';
import { loadConfig } from '../../src/platform/config';
import { createDb, quoteIdent } from '../../src/platform/db/database';
import { createLogger } from '../../src/platform/logger';
import { TEST_DB_PREFIX, testKeysDir } from './harness';
import { CLI, type Finished, finished, ROOT, run } from './processes';

/**
 * The canonical content of a record as the chain hashes it: what src/audit/chain.ts builds, rebuilt here from its
 * fields.
 */
export function contentOf(c: {
  seq: number;
  recordedAt: string;
  type: string;
  accountId: string | null;
  outcome: string | null;
  data: unknown;
}): string {
  const { seq, recordedAt, type, accountId, outcome, data } = c;
  return canonicalJson({ seq, recordedAt, type, accountId, outcome, data: data as Json });
}

/** Helpers for the audit tests: reading the chain as stored, running `optgate audit verify`, exports, tampering. */

export interface AuditRow {
  readonly seq: number;
  readonly recordedAt: Date;
  readonly type: string;
  readonly accountId: string | null;
  readonly outcome: string | null;
  readonly content: string;
  readonly prevHash: string;
  readonly hash: string;
  /** Format 3: the salt of the account commitment. */
  readonly accountSalt?: string;
  /** `data` of the hashed content. */
  readonly data: any;
}

/** The whole log (or the records `keep` keeps), in seq order, as the public reader rebuilds it from its tables. */
export async function auditRows(databaseUrl: string, keep: (r: AuditRow) => boolean = () => true): Promise<AuditRow[]> {
  const { db } = createDb({ url: databaseUrl, poolSize: 2, statementTimeoutMs: 30_000 }, createLogger('silent'));
  try {
    const out: AuditRow[] = [];
    for (let afterSeq = 0; ; ) {
      const page = await readRecords(db, { afterSeq, limit: 5000 });
      for (const r of page) {
        const row = { ...r, data: JSON.parse(r.content || '{}').data };
        if (keep(row)) out.push(row);
      }
      if (page.length < 5000) return out;
      afterSeq = page[page.length - 1]!.seq;
    }
  } finally {
    await db.destroy();
  }
}

/** The decision records that carry this decisionId. */
export const decisionRecords = (databaseUrl: string, decisionId: string) =>
  auditRows(databaseUrl, (r) => r.type === 'decision' && r.data?.decisionId === decisionId);

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * A record's hash, computed here independently of src/audit/chain.ts: format 2 when `format2`, else
 * format 1; format 3 with an account salt (docs/audit.md).
 */
export function recordHash(prevHash: string, content: string, format2 = true, accountSalt?: string): string {
  if (!format2) return sha256(`${prevHash}\n${content}`);
  const { seq, recordedAt, ...body } = JSON.parse(content);
  if (accountSalt) body.accountId = sha256(`optgate-account\n${accountSalt}\n${body.accountId}`);
  return sha256(`${prevHash}\n${seq}\n${recordedAt}\n${sha256(canonicalJson(body))}`);
}

/**
 * Checks a whole chain as the test sees it (independently of src/audit/verify.ts): seq 1..N without
 * gaps or repeats, every prevHash the previous hash (the first the genesis), every hash recomputed
 * (format 1 or 2), the columns equal to the hashed content. Returns the problems found.
 */
export function chainProblems(rows: readonly AuditRow[]): string[] {
  const problems: string[] = [];
  let prev = GENESIS_HASH;
  rows.forEach((r, i) => {
    const c = JSON.parse(r.content);
    if (r.seq !== i + 1) problems.push(`row ${i}: seq ${r.seq}, expected ${i + 1}`);
    if (r.prevHash !== prev) problems.push(`seq ${r.seq}: prevHash does not link`);
    if (
      recordHash(r.prevHash, r.content, true, r.accountSalt) !== r.hash &&
      recordHash(r.prevHash, r.content, false) !== r.hash
    ) {
      problems.push(`seq ${r.seq}: hash does not match content`);
    }
    if (
      c.seq !== r.seq ||
      c.type !== r.type ||
      c.accountId !== r.accountId ||
      c.outcome !== r.outcome ||
      c.recordedAt !== r.recordedAt.toISOString()
    ) {
      problems.push(`seq ${r.seq}: columns differ from content`);
    }
    prev = r.hash;
  });
  return problems;
}

/** The seq named by a verify report's verdict ("first bad sequence N"), if any. */
export function firstBadSeq(report: string): number | undefined {
  const m = /RESULT: TAMPERED: first bad sequence (\d+)/.exec(report);
  return m ? Number(m[1]) : undefined;
}

/** `optgate audit verify --db` as an operator runs it, against `databaseUrl`, trusting the keys in `keysDir`. */
export function verifyDb(databaseUrl: string, keysDir: string, timeoutMs = 60_000): Promise<Finished> {
  return run(
    CLI,
    ['audit', 'verify', '--db'],
    { DATABASE_URL: databaseUrl, KEYS_DIR: keysDir, LOG_LEVEL: 'silent' },
    timeoutMs,
  );
}

/** `optgate audit verify FILE --manifest M --jwks J`. */
export function verifyFile(file: string, manifest: string, jwks: string, timeoutMs = 60_000): Promise<Finished> {
  return run(CLI, ['audit', 'verify', file, '--manifest', manifest, '--jwks', jwks], {}, timeoutMs);
}

/** A fresh test database URL (with the user name filled in, as the service computes it). */
export function newDatabaseUrl(): string {
  return loadConfig({ DATABASE_URL: `postgres://localhost:5432/${TEST_DB_PREFIX}${randomBytes(6).toString('hex')}` }).db
    .url;
}

export const databaseName = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));

async function admin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const u = new URL(url);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString() });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A byte-for-byte copy of a database (CREATE DATABASE … TEMPLATE): each tamper case starts from the same intact chain.
 */
export async function cloneDatabase(templateUrl: string): Promise<string> {
  const url = newDatabaseUrl();
  await admin(templateUrl, (c) =>
    c.query(`create database ${quoteIdent(databaseName(url))} template ${quoteIdent(databaseName(templateUrl))}`),
  );
  return url;
}

/**
 * Runs `fn` on a connection of a database superuser who switched the user triggers off for their
 * session (`session_replication_role = replica`): how an attacker with full rights bypasses the
 * append-only triggers.
 */
export async function asAttacker<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('set session_replication_role = replica');
    return await fn(client);
  } finally {
    await client.end();
  }
}

export { deleteRedisPrefix } from './database';

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until the checkpoint worker has signed the current chain head. */
export async function checkpointAtHead(db: Pick<pg.Pool, 'query'>, timeoutMs = 15_000): Promise<number> {
  return until(
    'a checkpoint of the chain head',
    async () => {
      const { rows } = await db.query(
        'select h.seq from audit_head h join audit_checkpoints c on c.seq = h.seq and c.hash = h.hash',
      );
      return rows.length ? Number(rows[0].seq) : undefined;
    },
    timeoutMs,
  );
}

export const tempDir = () => mkdtemp(path.join(os.tmpdir(), 'optgate-audit-test-'));

// ---- HTTP against a base URL (a test service or a child process) ----

export async function http(base: string, method: string, p: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: /json/.test(res.headers.get('content-type') ?? '') && text ? JSON.parse(text) : text,
  };
}

/** Requests an export and waits for it to complete; returns its status document. */
export async function exportAndWait(
  base: string,
  token: string,
  body: Record<string, unknown>,
  timeoutMs = 30_000,
  everyMs = 100,
) {
  const req = await http(base, 'POST', '/v1/audit/exports', token, body);
  if (req.status !== 202) throw new Error(`export request: ${req.status} ${JSON.stringify(req.body)}`);
  return waitForExport(base, token, req.body.exportId, timeoutMs, everyMs);
}

/** Polls GET /v1/audit/exports/:id until the export is completed; returns its status document. */
export function waitForExport(base: string, token: string, id: string, timeoutMs = 30_000, everyMs = 100) {
  return until(
    `export ${id}`,
    async () => {
      const s = await http(base, 'GET', `/v1/audit/exports/${id}`, token);
      if (s.body.status === 'failed') throw new Error(`export failed: ${s.body.error}`);
      return s.body.status === 'completed' ? s.body : undefined;
    },
    timeoutMs,
    everyMs,
  );
}

/** Downloads an export's file (streamed to disk), its manifest and the service's JWKS into `dir`. */
export async function fetchExport(base: string, token: string, exportId: string, dir: string, format: string) {
  const file = path.join(dir, `${exportId}.${format}`);
  const manifest = path.join(dir, `${exportId}.manifest.jws`);
  const jwks = path.join(dir, 'jwks.json');
  const res = await fetch(`${base}/v1/audit/exports/${exportId}/download`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200 || !res.body) throw new Error(`download: ${res.status}`);
  await pipeline(Readable.fromWeb(res.body as never), createWriteStream(file));
  const m = await fetch(`${base}/v1/audit/exports/${exportId}/manifest`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (m.status !== 200) throw new Error(`manifest: ${m.status}`);
  await writeFile(manifest, await m.text());
  await writeFile(jwks, await (await fetch(`${base}/.well-known/jwks.json`)).text());
  return { file, manifest, jwks, sha256Header: res.headers.get('x-content-sha256') };
}

// ---- The built service as a child process ----

export interface ProcessEnv extends Record<string, string> {
  DATABASE_URL: string;
  REDIS_PREFIX: string;
  KEYS_DIR: string;
}

/** Keys shared by the child processes and the test, generated once per test process. */
export const processKeysDir = testKeysDir;

export function processEnv(extra: Record<string, string> = {}): ProcessEnv {
  const url = newDatabaseUrl();
  return {
    DATABASE_URL: url,
    REDIS_PREFIX: `optgate-test-${databaseName(url)}`,
    KEYS_DIR: processKeysDir,
    RUN_WORKERS: 'false',
    LOG_LEVEL: 'warn',
    DB_POOL_SIZE: '10',
    ...extra,
  };
}

/**
 * A token the child processes accept: signed with the key in env.KEYS_DIR (generated if missing, as a development start
 * would).
 */
export async function processToken(env: Record<string, string>, scopes: string, purposes: string[]): Promise<string> {
  const config = loadConfig(env);
  const keys = await loadKeys(config.auth, config.env);
  return issueToken(keys, config.auth, {
    subject: 'audit-test',
    scopes: scopes.split(' '),
    purposes,
    ttlSeconds: 3600,
    // The tests record changes as the subscriber (a channel the ISP authenticated them on).
    extraClaims: { subscriber_channel: true },
  });
}

export const ALL_PURPOSES = [
  'ad_targeting',
  'data_sale',
  'third_party_disclosure',
  'permit_access',
  'product_analytics',
  'service_provision',
  'billing',
  'fraud_protection',
];

/**
 * Resident set size of a process, in KiB, read from Linux's /proc (no `ps` spawned per sample: on a loaded
 * machine a spawn can stall for seconds). Undefined once the process is gone.
 */
export async function rssKiB(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const n = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  return n > 0 ? n : undefined;
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak and the series, in KiB. */
export function sampleRss(
  pid: number,
  everyMs = 200,
): { stop(): Promise<{ peakKiB: number; samples: number; series: number[] }> } {
  const series: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const v = await rssKiB(pid);
      if (v) series.push(v);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { peakKiB: Math.max(0, ...series), samples: series.length, series };
    },
  };
}

/** Runs the built CLI, sampling its RSS; for the streaming verification of a large file. */
export async function runCliMeasured(
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<Finished & { peakKiB: number }> {
  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    cwd: ROOT,
  });
  const sampler = sampleRss(child.pid!, 200);
  const end = await finished(child, timeoutMs);
  const { peakKiB } = await sampler.stop();
  return { ...end, peakKiB };
}

/** A compact JWS signed with a key nobody trusts (the attacker's), optionally claiming someone else's key id. */
export async function forgeJws(payload: object, typ: string, kid = 'attacker-key'): Promise<string> {
  const { privateKey } = await generateKeyPair('ES256');
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'ES256', kid, typ })
    .sign(privateKey);
}

/**
 * Writes the chain 1..rows inside PostgreSQL, as a database written before audit format 2 holds it:
 * one INSERT … SELECT over a recursive CTE that builds each record's canonical JSON (keys sorted, as
 * contentOf writes it) and its format 1 hash = sha256(prevHash || "\n" || content), then moves the
 * head. Records of batch decisions of 10,000 accounts each. About 25 s for a million.
 */
export async function writeFormat1Chain(sql: pg.Pool, rows: number, recordedAt: string): Promise<void> {
  const client = await sql.connect();
  try {
    await client.query('begin');
    await client.query(
      `create function pg_temp.content_for(n bigint, at text) returns text language sql immutable as $f$
      select format(
        '{"accountId":"SUB-%s","data":{"categories":["web_browsing_history","app_usage_history"],'
          || '"clientId":"ad-pipeline","decisionId":"%s","endpoint":"batch","evaluatedAt":"%s",'
          || '"purpose":"ad_targeting","results":%s},"outcome":"%s","recordedAt":"%s","seq":%s,"type":"decision"}',
        lpad(n::text, 8, '0'), md5(((n - 1) / 10000)::text)::uuid, at,
        case when n % 3 = 0
          then '[{"allow":true,"category":"web_browsing_history","reason":"consent_granted"},'
            || '{"allow":true,"category":"app_usage_history","reason":"consent_granted"}]'
          else '[{"allow":false,"category":"web_browsing_history","reason":"no_consent"},'
            || '{"allow":false,"category":"app_usage_history","reason":"no_consent"}]' end,
        case when n % 3 = 0 then 'allow' else 'deny' end, at, n)
    $f$`,
    );
    await client.query(
      `insert into audit_records (seq, recorded_at, type, account_id, outcome, content, prev_hash, hash)
       with recursive chain(n, content, prev_hash, hash) as (
         select 1::bigint, x.content, repeat('0', 64),
           encode(sha256(convert_to(repeat('0', 64) || E'\\n' || x.content, 'UTF8')), 'hex')
         from (select pg_temp.content_for(1, $2) as content) x
         union all
         select c.n + 1, x.content, c.hash, encode(sha256(convert_to(c.hash || E'\\n' || x.content, 'UTF8')), 'hex')
         from chain c cross join lateral (select pg_temp.content_for(c.n + 1, $2) as content) x
         where c.n < $1
       )
       select n, $2::timestamptz, 'decision', 'SUB-' || lpad(n::text, 8, '0'),
         case when n % 3 = 0 then 'allow' else 'deny' end, content, prev_hash, hash
       from chain`,
      [rows, recordedAt],
    );
    await client.query(
      `update audit_head set seq = r.seq, hash = r.hash, recorded_at = r.recorded_at from audit_records r where ` +
        `r.seq = $1`,
      [rows],
    );
    await client.query('commit');
  } catch (err) {
    await client.query('rollback');
    throw err;
  } finally {
    client.release();
  }
}
