import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { stringify as stringifyCsv } from 'csv-stringify/sync';
import { decodeProtectedHeader } from 'jose';
import { CHECKPOINT_TYP, canonicalJson, MANIFEST_TYP } from '../../src/audit';
import {
  type AuditRow,
  auditRows,
  checkpointAtHead,
  deleteRedisPrefix,
  exportAndWait,
  fetchExport,
  firstBadSeq,
  forgeJws,
  recordHash,
  tempDir,
  verifyFile,
} from '../support/audit';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Exports verified offline with the built CLI (`optgate audit verify FILE --manifest M --jwks J`):
 * intact files verify; every kind of tampering with the file or the signed manifest is reported
 * with the first bad sequence number (or the manifest/checkpoint failure) and exit 1.
 * The service runs its BullMQ workers (exports, and a checkpoint every second).
 */

let svc: TestService;
let admin: string;
let dir: string;
let accountA: string;
let rows: AuditRow[];
let ndjson: { file: string; manifest: string; jwks: string; sha256Header: string | null; status: any };
let csv: typeof ndjson;

const payloadOf = (jws: string) => JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString());

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '1000', DB_POOL_SIZE: '5' });
  admin = await adminToken(svc);
  dir = await tempDir();
  accountA = await createAccount(svc, admin);
  const accountB = await createAccount(svc, admin);
  // An account id a spreadsheet would take for a formula.
  const formula = await createAccount(svc, admin, 'active', '-cmd.exe');
  await decide(svc, admin, { accountId: formula, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
  await putConsents(svc, admin, accountA, [
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
  const round = async () => {
    for (const id of [accountA, accountB])
      await decide(svc, admin, { accountId: id, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
    await call(svc.url, 'POST', '/v1/decisions/batch', {
      token: admin,
      body: { purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds: [accountB, accountA] },
    });
  };
  for (let i = 0; i < 5; i++) await round();
  // A signed head inside the export, and more records after it.
  await checkpointAtHead(svc.sql);
  for (let i = 0; i < 3; i++) await round();

  const get = async (format: 'ndjson' | 'csv') => {
    const status = await exportAndWait(svc.url, admin, { format });
    return { ...(await fetchExport(svc.url, admin, status.exportId, dir, format)), status };
  };
  ndjson = await get('ndjson');
  csv = await get('csv');
  rows = await auditRows(svc.databaseUrl);
}, 60_000);

afterAll(async () => {
  await svc.stop();
  await deleteRedisPrefix(svc.config.redis.prefix);
  await rm(dir, { recursive: true, force: true });
});

let variants = 0;
async function variant(ext: string, text: string): Promise<string> {
  const file = path.join(dir, `variant-${++variants}.${ext}`);
  await writeFile(file, text);
  return file;
}

async function expectIntact(file: string, manifest: string, jwks: string) {
  const r = await verifyFile(file, manifest, jwks);
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/RESULT: INTACT\n$/);
  expect(r.code).toBe(0);
  return r.stdout;
}

async function expectTampered(file: string, o: { firstBad?: number; pattern?: RegExp; manifest?: string } = {}) {
  const r = await verifyFile(file, o.manifest ?? ndjson.manifest, ndjson.jwks);
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/RESULT: TAMPERED/);
  expect(r.code).toBe(1);
  if (o.firstBad !== undefined) expect(firstBadSeq(r.stdout)).toBe(o.firstBad);
  if (o.pattern) expect(r.stdout).toMatch(o.pattern);
  return r.stdout;
}

describe('an unfiltered NDJSON export', () => {
  let lines: string[];
  let manifest: any;
  beforeAll(async () => {
    lines = (await readFile(ndjson.file, 'utf8')).split('\n').slice(0, -1);
    manifest = payloadOf(await readFile(ndjson.manifest, 'utf8'));
  });
  const text = (ls: string[]) => ls.map((l) => `${l}\n`).join('');
  /** Line i holds seq i + 1. */
  const seqOf = (line: string) => JSON.parse(line).seq as number;

  it(
    'holds the chain as stored, byte for byte, with a manifest signed by the service key and a checkpoint ' + 'inside',
    async () => {
      expect(ndjson.status).toMatchObject({ status: 'completed', progress: 100, format: 'ndjson', rows: lines.length });
      expect(lines.length).toBeGreaterThanOrEqual(30);
      const bytes = await readFile(ndjson.file);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      expect(ndjson.sha256Header).toBe(sha256);
      expect(decodeProtectedHeader(await readFile(ndjson.manifest, 'utf8'))).toMatchObject({
        alg: 'ES256',
        typ: MANIFEST_TYP,
      });
      expect(manifest).toMatchObject({
        iss: 'optgate',
        exportId: ndjson.status.exportId,
        format: 'ndjson',
        contiguous: true,
        rows: lines.length,
        bytes: bytes.length,
        sha256,
      });
      expect(manifest.first).toEqual({ seq: 1, prevHash: '0'.repeat(64) });
      for (const [i, line] of lines.entries()) {
        const { prevHash, hash, accountSalt, ...content } = JSON.parse(line);
        expect(accountSalt).toBe(rows[i]!.accountSalt);
        const row = rows[i]!;
        expect(content.seq).toBe(row.seq);
        expect(canonicalJson(content)).toBe(row.content);
        expect([prevHash, hash]).toEqual([row.prevHash, row.hash]);
      }
      expect(manifest.last).toEqual({ seq: lines.length, hash: rows[lines.length - 1]!.hash });
      const checkpoint = payloadOf(manifest.checkpoint);
      expect(checkpoint.seq).toBeLessThan(lines.length);
      expect(checkpoint.hash).toBe(rows[checkpoint.seq - 1]!.hash);
      // The export request itself is a staff action in the chain.
      expect(
        rows.some(
          (r) =>
            r.type === 'staff_action' &&
            r.data.action === 'export_requested' &&
            r.data.exportId === ndjson.status.exportId,
        ),
      ).toBe(true);
    },
  );

  it('verifies: exit 0, RESULT: INTACT, manifest, file and checkpoint all checked', async () => {
    const out = await expectIntact(ndjson.file, ndjson.manifest, ndjson.jwks);
    expect(out).toMatch(/manifest\s+signature valid/);
    expect(out).toMatch(new RegExp(`records\\s+${lines.length} ndjson records \\(seq 1 … ${lines.length}\\)`));
    expect(out).toMatch(/chain\s+every hash recomputed, every link and sequence number checked/);
    expect(out).toMatch(/file\s+sha256 [0-9a-f]{64}/);
    expect(out).toMatch(
      new RegExp(`checkpoint\\s+seq ${payloadOf(manifest.checkpoint).seq} signed .*: signature valid, matches record`),
    );
  });

  it('a changed payload (a deny turned into an allow)', async () => {
    const i = lines.findIndex((l, n) => n > 5 && l.includes('"outcome":"deny"'));
    const changed = [...lines];
    changed[i] = lines[i]!.replace('"outcome":"deny"', '"outcome":"allow"');
    await expectTampered(await variant('ndjson', text(changed)), {
      firstBad: seqOf(lines[i]!),
      pattern: /altered: the content does not match its hash/,
    });
  });

  it('a deleted line', async () => {
    const k = 12;
    await expectTampered(await variant('ndjson', text(lines.filter((_, i) => i !== k - 1))), {
      firstBad: k,
      pattern: /missing/,
    });
  });

  it('an inserted line: a repeated record', async () => {
    const k = 9;
    const repeated = [...lines.slice(0, k), lines[k - 1]!, ...lines.slice(k)];
    await expectTampered(await variant('ndjson', text(repeated)), { firstBad: k, pattern: /out of place/ });
  });

  it('an inserted line: a well-formed forged record linked to the one before it', async () => {
    const k = 14;
    const prev = JSON.parse(lines[k - 1]!);
    const { prevHash: _p, hash: _h, accountSalt: _s, ...content } = JSON.parse(lines[k]!);
    const forgedContent = {
      ...content,
      seq: k + 1,
      outcome: 'allow',
      data: { ...content.data, purpose: 'data_sale', decisionId: '00000000-0000-4000-8000-000000000000' },
    };
    const c = canonicalJson(forgedContent);
    const forged = `${c.slice(0, -1)},"prevHash":"${prev.hash}","hash":"${recordHash(prev.hash, c)}"}`;
    const inserted = [...lines.slice(0, k), forged, ...lines.slice(k)];
    // The forged line is consistent with what precedes it; the first record out of place is the original k+1.
    await expectTampered(await variant('ndjson', text(inserted)), { firstBad: k + 1 });
  });

  it('two lines swapped', async () => {
    const k = 17;
    const swapped = [...lines];
    [swapped[k - 1], swapped[k]] = [lines[k]!, lines[k - 1]!];
    await expectTampered(await variant('ndjson', text(swapped)), { firstBad: k });
  });

  it('a line made unreadable (cut in half) is reported by its place in the chain', async () => {
    const k = 20;
    const cut = lines.map((l, i) => (i === k - 1 ? l.slice(0, 40) : l));
    await expectTampered(await variant('ndjson', text(cut)), { firstBad: k, pattern: /unreadable record/ });
  });

  it('the first line removed: the file no longer starts where the signed manifest says', async () => {
    await expectTampered(await variant('ndjson', text(lines.slice(1))), {
      pattern: /file\s+FAILED: .*the first record is not the one the manifest names/s,
    });
  });

  it('the last lines cut off: the row count and last record differ from the manifest', async () => {
    const out = await expectTampered(await variant('ndjson', text(lines.slice(0, -3))), {
      pattern: /FAILED: file has \d+ records, the manifest says/,
    });
    expect(out).toMatch(/the last record is not the one the manifest names/);
  });

  it(
    'a file rewritten from seq 3 with every hash recomputed: the signed checkpoint names the record, the ' +
      'manifest the file',
    async () => {
      let prevHash = JSON.parse(lines[1]!).hash;
      const rewritten = lines.map((line, i) => {
        if (i < 2) return line;
        const { prevHash: _p, hash: _h, accountSalt: _s, ...content } = JSON.parse(line);
        if (i === 2) content.data = { ...content.data, note: 'rewritten' };
        const c = canonicalJson(content);
        const hash = recordHash(prevHash, c);
        const out = `${c.slice(0, -1)},"prevHash":"${prevHash}","hash":"${hash}"}`;
        prevHash = hash;
        return out;
      });
      const out = await expectTampered(await variant('ndjson', text(rewritten)), {
        firstBad: payloadOf(manifest.checkpoint).seq,
        pattern: /does not match the signed checkpoint/,
      });
      expect(out).toMatch(/file\s+FAILED: file sha256/);
    },
  );

  describe('a forged manifest', () => {
    it('re-signed with another key', async () => {
      const forged = await variant('jws', await forgeJws(manifest, MANIFEST_TYP));
      await expectTampered(ndjson.file, { manifest: forged, pattern: /manifest\s+FAILED: signature does not verify/ });
    });

    it('its checkpoint replaced (a head signed by another key), the service signature kept', async () => {
      const [h, , s] = (await readFile(ndjson.manifest, 'utf8')).trim().split('.');
      const fakeCheckpoint = await forgeJws(
        { iss: 'optgate', seq: 5, hash: JSON.parse(lines[4]!).hash, signedAt: new Date().toISOString() },
        CHECKPOINT_TYP,
      );
      const body = Buffer.from(JSON.stringify({ ...manifest, checkpoint: fakeCheckpoint })).toString('base64url');
      await expectTampered(ndjson.file, {
        manifest: await variant('jws', `${h}.${body}.${s}`),
        pattern: /manifest\s+FAILED: signature does not verify/,
      });
    });

    it('manifest and checkpoint both forged (signed by another key): refused at the manifest', async () => {
      const fakeCheckpoint = await forgeJws(
        { iss: 'optgate', seq: 5, hash: 'c'.repeat(64), signedAt: new Date().toISOString() },
        CHECKPOINT_TYP,
      );
      const forged = await variant('jws', await forgeJws({ ...manifest, checkpoint: fakeCheckpoint }, MANIFEST_TYP));
      const out = await expectTampered(ndjson.file, {
        manifest: forged,
        pattern: /RESULT: TAMPERED: manifest: signature does not verify/,
      });
      // Nothing from an unverified manifest is trusted: its checkpoint is not reported as valid.
      expect(out).not.toMatch(/checkpoint\s+seq/);
    });

    it('a report about a manifest that does not verify does not also say that no manifest was given', async () => {
      const forged = await variant('jws', await forgeJws(manifest, MANIFEST_TYP));
      const r = await verifyFile(ndjson.file, forged, ndjson.jwks);
      expect(r.code).toBe(1);
      expect(r.stdout).not.toMatch(/not given/);
    });

    it('a manifest of another type (a checkpoint JWS passed as manifest) is refused', async () => {
      await expectTampered(ndjson.file, {
        manifest: await variant('jws', manifest.checkpoint),
        pattern: /manifest\s+FAILED: signature does not verify \(expected a optgate-export-manifest\+jws/,
      });
    });
  });
});

describe('an unfiltered CSV export', () => {
  let records: Record<string, string>[];
  const write = (rs: Record<string, string>[]) =>
    variant(
      'csv',
      stringifyCsv(rs, {
        header: true,
        columns: ['seq', 'recorded_at', 'type', 'account_id', 'outcome', 'data', 'prev_hash', 'hash', 'account_salt'],
      }),
    );
  const expectCsvTampered = async (rs: Record<string, string>[], firstBad: number) => {
    const r = await verifyFile(await write(rs), csv.manifest, csv.jwks);
    expect(r.code).toBe(1);
    expect(firstBadSeq(r.stdout)).toBe(firstBad);
  };
  beforeAll(async () => {
    records = parseCsv(await readFile(csv.file), { columns: true });
  });

  it('verifies: exit 0, RESULT: INTACT; the rows are the chain', async () => {
    expect(csv.status).toMatchObject({ status: 'completed', format: 'csv' });
    expect(records.length).toBe(csv.status.rows);
    expect(records.map((r) => Number(r.seq))).toEqual(records.map((_, i) => i + 1));
    expect(records.map((r) => r.hash)).toEqual(rows.slice(0, records.length).map((r) => r.hash));
    const out = await expectIntact(csv.file, csv.manifest, csv.jwks);
    expect(out).toMatch(/ csv records/);
    // Re-encoding the same rows gives the same bytes: what the test writes below is a faithful CSV.
    expect(stringifyCsv(records, { header: true, columns: Object.keys(records[0]!) })).toBe(
      await readFile(csv.file, 'utf8'),
    );
  });

  it('no cell begins as a formula: "-cmd.exe" is written as text, and the file verifies', async () => {
    const cells = records.flatMap((r) => Object.values(r));
    expect(cells.filter((c) => /^[=+\-@\t\r]/.test(c))).toEqual([]);
    expect(records.filter((r) => r.account_id === "'-cmd.exe").length).toBeGreaterThan(0);
    // The same record in the NDJSON export holds the id itself.
    expect(await readFile(ndjson.file, 'utf8')).toContain('"accountId":"-cmd.exe"');
  });

  it('a changed payload', async () => {
    const i = records.findIndex((r, n) => n > 5 && r.outcome === 'allow' && r.type === 'decision');
    const changed = records.map((r, n) =>
      n === i ? { ...r, data: r.data!.replace('"purpose":"ad_targeting"', '"purpose":"data_sale"') } : r,
    );
    await expectCsvTampered(changed, i + 1);
  });

  it('a changed outcome column', async () => {
    const i = records.findIndex((r, n) => n > 5 && r.outcome === 'deny');
    await expectCsvTampered(
      records.map((r, n) => (n === i ? { ...r, outcome: 'allow' } : r)),
      i + 1,
    );
  });

  it('a deleted row', async () => {
    await expectCsvTampered(
      records.filter((_, n) => n !== 10),
      11,
    );
  });

  it('an inserted (repeated) row', async () => {
    await expectCsvTampered([...records.slice(0, 8), records[7]!, ...records.slice(8)], 8);
  });

  // An unreadable CSV row is a finding, reported like an unreadable NDJSON line, not a crash.
  it('a row with a field too many gives a report naming it, not a crash', async () => {
    const file = await variant(
      'csv',
      (await readFile(csv.file, 'utf8'))
        .split('\n')
        .map((l, i) => (i === 6 ? `${l},x` : l))
        .join('\n'),
    );
    const r = await verifyFile(file, csv.manifest, csv.jwks);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    expect(firstBadSeq(r.stdout)).toBe(6);
  });

  it('two rows swapped', async () => {
    const swapped = [...records];
    [swapped[19], swapped[20]] = [records[20]!, records[19]!];
    await expectCsvTampered(swapped, 20);
  });
});

describe('filtered exports', () => {
  it(
    'by account: verifies as intact (hashes only: a filtered file holds no links), and tampering is still ' + 'found',
    async () => {
      const status = await exportAndWait(svc.url, admin, { format: 'ndjson', accountId: accountA });
      const got = await fetchExport(svc.url, admin, status.exportId, dir, 'ndjson');
      const lines = (await readFile(got.file, 'utf8')).split('\n').slice(0, -1);
      const { last_seq: lastSeq } = (
        await svc.sql.query('select last_seq from audit_exports where id = $1', [status.exportId])
      ).rows[0];
      const expected = await auditRows(svc.databaseUrl, (r) => r.accountId === accountA && r.seq <= Number(lastSeq));
      expect(lines.map((l) => JSON.parse(l).seq)).toEqual(expected.map((r) => r.seq));
      expect(lines.every((l) => JSON.parse(l).accountId === accountA)).toBe(true);
      expect(payloadOf(await readFile(got.manifest, 'utf8'))).toMatchObject({
        contiguous: false,
        filters: { accountId: accountA },
        rows: lines.length,
      });

      const out = await expectIntact(got.file, got.manifest, got.jwks);
      expect(out).toMatch(/, filtered/);

      const i = lines.findIndex((l) => l.includes('"outcome":"allow"'));
      const changed = lines.map((l, n) => (n === i ? l.replace('"outcome":"allow"', '"outcome":"deny"') : l));
      const r = await verifyFile(
        await variant('ndjson', changed.map((l) => `${l}\n`).join('')),
        got.manifest,
        got.jwks,
      );
      expect(r.code).toBe(1);
      expect(firstBadSeq(r.stdout)).toBe(JSON.parse(lines[i]!).seq);

      const dropped = await verifyFile(
        await variant(
          'ndjson',
          lines
            .filter((_, n) => n !== 2)
            .map((l) => `${l}\n`)
            .join(''),
        ),
        got.manifest,
        got.jwks,
      );
      expect(dropped.code).toBe(1);
      expect(dropped.stdout).toMatch(/file\s+FAILED/);
    },
  );

  it('by time range: contiguous from a record other than the first, verifies as intact', async () => {
    const from = rows[9]!.recordedAt;
    const to = rows[20]!.recordedAt;
    const status = await exportAndWait(svc.url, admin, {
      format: 'csv',
      from: from.toISOString(),
      to: to.toISOString(),
    });
    const got = await fetchExport(svc.url, admin, status.exportId, dir, 'csv');
    const records: Record<string, string>[] = parseCsv(await readFile(got.file), { columns: true });
    const inWindow = rows.filter((r) => r.recordedAt >= from && r.recordedAt < to);
    expect(records.map((r) => Number(r.seq))).toEqual(inWindow.map((r) => r.seq));
    expect(records[0]!.prev_hash).not.toBe('0'.repeat(64));
    expect(payloadOf(await readFile(got.manifest, 'utf8'))).toMatchObject({ contiguous: true, rows: inWindow.length });
    await expectIntact(got.file, got.manifest, got.jwks);
  });
});
