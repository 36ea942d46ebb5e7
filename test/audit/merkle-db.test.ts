import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  AuditTree,
  inclusionProof,
  leafHash,
  MerkleAccumulator,
  verifyConsistency,
  verifyInclusion,
} from '../../src/audit';
import { createDb, type Db } from '../../src/platform/db/database';
import { createLogger } from '../../src/platform/logger';
import { auditRows, deleteRedisPrefix, tempDir, until, verifyDb } from '../support/audit';
import { adminToken, createAccount, decide, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService, testKeysDir } from '../support/harness';
import { CLI, run } from '../support/processes';

/**
 * The Merkle tree over the real log in PostgreSQL: its root for every size 1 … 300 equals an
 * independent computation over the records' hashes; signed tree heads come every tick; proofs from
 * the API and from `optgate audit prove` verify offline (`verify-proof`, `verify-consistency`) and
 * changed ones do not; `verify --db` recomputes every signed root. Then a log of 1,000,000 records:
 * random proofs against the reference.
 */

const H = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
function mth(d: Buffer[]): Buffer {
  if (d.length === 1) return H(Buffer.from([0]), d[0]!);
  const k = 2 ** Math.ceil(Math.log2(d.length) - 1);
  return H(Buffer.from([1]), mth(d.slice(0, k)), mth(d.slice(k)));
}

describe('a log of about 300 records written by the service', () => {
  let svc: TestService;
  let db: Db;
  let token: string;
  let dir: string;
  let hashes: Buffer[];

  beforeAll(async () => {
    svc = await startTestService({ RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '200' });
    ({ db } = createDb({ url: svc.databaseUrl, poolSize: 2, statementTimeoutMs: 30_000 }, createLogger('silent')));
    token = await adminToken(svc);
    dir = await tempDir();
    const ids = await Promise.all(Array.from({ length: 30 }, () => createAccount(svc, token)));
    await putConsents(svc, token, ids[0]!, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
    ]);
    // Single decisions, batches (verdict rows rebuilt through their tiles) and consent events, interleaved.
    for (let round = 0; round < 8; round++) {
      for (const id of ids)
        await decide(svc, token, { accountId: id, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
      await call(svc.url, 'POST', '/v1/decisions/batch', {
        token,
        body: {
          purpose: 'ad_targeting',
          categories: ['web_browsing_history'],
          accountIds: ids,
        },
      });
    }
    const head = Number((await svc.sql.query('select seq from audit_head')).rows[0].seq);
    expect(head).toBeGreaterThanOrEqual(300);
    // Wait for the tree head of the current log.
    await until('a tree head at the head', async () => {
      const r = await call(svc.url, 'GET', '/v1/audit/tree-heads/latest', { token });
      return r.status === 200 && r.body.treeSize === head ? r.body : undefined;
    });
    hashes = (await auditRows(svc.databaseUrl)).map((r) => Buffer.from(r.hash, 'hex'));
  }, 60_000);

  afterAll(async () => {
    await db.destroy();
    await svc.stop();
    await deleteRedisPrefix(svc.config.redis.prefix);
  });

  it('the stored tree gives the reference root for every size 1 … 300', async () => {
    const tree = new AuditTree(db);
    for (let n = 1; n <= 300; n++) {
      expect((await tree.root(n)).toString('hex')).toBe(mth(hashes.slice(0, n)).toString('hex'));
    }
    // Stored nodes: one per complete tile of 64 and their complete parents.
    const { rows } = await svc.sql.query(
      'select level, count(*)::int as n from audit_tree_nodes group by 1 order by 1',
    );
    expect(rows[0]).toEqual({ level: 6, n: Math.floor(hashes.length / 64) });
  });

  it('tree heads: listed newest first, each signed, each root the reference root of its size', async () => {
    const r = await call(svc.url, 'GET', '/v1/audit/tree-heads?limit=1000', { token });
    expect(r.status).toBe(200);
    expect(r.body.treeHeads.length).toBeGreaterThan(1);
    for (const th of r.body.treeHeads) {
      expect(th.rootHash).toBe(mth(hashes.slice(0, th.treeSize)).toString('hex'));
      const payload = JSON.parse(Buffer.from(th.jws.split('.')[1], 'base64url').toString());
      expect(payload).toMatchObject({ seq: th.treeSize, rootHash: th.rootHash, hash: th.hash });
    }
    const sizes = r.body.treeHeads.map((t: { treeSize: number }) => t.treeSize);
    expect(sizes).toEqual([...sizes].sort((a: number, b: number) => b - a));
  });

  it('an inclusion proof from the API verifies against the signed root; from the CLI, offline', async () => {
    const latest = (await call(svc.url, 'GET', '/v1/audit/tree-heads/latest', { token })).body;
    for (const seq of [1, 2, 63, 64, 65, 150, latest.treeSize]) {
      const p = await call(svc.url, 'GET', `/v1/audit/proofs/inclusion?seq=${seq}`, { token });
      expect(p.status).toBe(200);
      expect(p.body).toMatchObject({ seq, leafIndex: seq - 1, treeSize: latest.treeSize, treeHead: latest.jws });
      const ok = verifyInclusion(
        seq - 1,
        latest.treeSize,
        leafHash(p.body.recordHash),
        p.body.hashes.map((h: string) => Buffer.from(h, 'hex')),
        Buffer.from(latest.rootHash, 'hex'),
      );
      expect(ok).toBe(true);
    }
    const jwks = path.join(dir, 'jwks.json');
    await writeFile(jwks, await (await fetch(`${svc.url}/.well-known/jwks.json`)).text());
    const cliEnv = { DATABASE_URL: svc.databaseUrl, KEYS_DIR: testKeysDir, LOG_LEVEL: 'silent' };
    const proved = await run(CLI, ['audit', 'prove', '--seq', '100'], cliEnv);
    expect(proved.code).toBe(0);
    const file = path.join(dir, 'proof.json');
    await writeFile(file, proved.stdout);
    const ok = await run(CLI, ['audit', 'verify-proof', file, '--jwks', jwks], {});
    expect(ok.stdout).toMatch(/RESULT: INTACT/);
    expect(ok.code).toBe(0);

    // The record changed (a deny made an allow), a hash of the path changed, another key: each refused.
    const proof = JSON.parse(proved.stdout);
    const variants = [
      { ...proof, record: { ...proof.record, outcome: proof.record.outcome === 'allow' ? 'deny' : 'allow' } },
      {
        ...proof,
        hashes: [proof.hashes[0].replace(/^./, (c: string) => (c === '0' ? '1' : '0')), ...proof.hashes.slice(1)],
      },
      { ...proof, leafIndex: proof.leafIndex + 1 },
    ];
    for (const [i, v] of variants.entries()) {
      const f = path.join(dir, `bad-${i}.json`);
      await writeFile(f, JSON.stringify(v));
      const r = await run(CLI, ['audit', 'verify-proof', f, '--jwks', jwks], {});
      expect(r.stdout).toMatch(/RESULT: TAMPERED/);
      expect(r.code).toBe(1);
    }
    const usage = await run(CLI, ['audit', 'prove', '--seq', '0'], cliEnv);
    expect(usage.code).toBe(2);
  }, 60_000);

  it('a later tree head extends an earlier one: the proof verifies (API, CLI); a forged one does not', async () => {
    const heads = (await call(svc.url, 'GET', '/v1/audit/tree-heads?limit=1000', { token })).body.treeHeads;
    const newer = heads[0];
    const older = heads[heads.length - 1];
    const p = await call(svc.url, 'GET', `/v1/audit/proofs/consistency?from=${older.treeSize}&to=${newer.treeSize}`, {
      token,
    });
    expect(p.status).toBe(200);
    const proof = p.body.hashes.map((h: string) => Buffer.from(h, 'hex'));
    const [r1, r2] = [Buffer.from(older.rootHash, 'hex'), Buffer.from(newer.rootHash, 'hex')];
    expect(verifyConsistency(older.treeSize, newer.treeSize, r1, r2, proof)).toBe(true);

    const jwks = path.join(dir, 'jwks.json');
    const [o, n, f] = ['older.jws', 'newer.jws', 'consistency.json'].map((x) => path.join(dir, x)) as [
      string,
      string,
      string,
    ];
    await writeFile(o, older.jws);
    await writeFile(n, newer.jws);
    await writeFile(f, JSON.stringify(p.body));
    const ok = await run(CLI, ['audit', 'verify-consistency', o, n, '--proof', f, '--jwks', jwks], {});
    expect(ok.stdout).toMatch(/RESULT: INTACT/);
    expect(ok.code).toBe(0);
    // The heads swapped: the newer does not "extend" the older the other way round.
    const swapped = await run(CLI, ['audit', 'verify-consistency', n, o, '--proof', f, '--jwks', jwks], {});
    expect(swapped.code).toBe(1);

    const bad = await call(svc.url, 'GET', `/v1/audit/proofs/consistency?from=${newer.treeSize + 1}`, { token });
    expect(bad.status).toBe(422);
    const beyond = await call(svc.url, 'GET', `/v1/audit/proofs/inclusion?seq=1&treeSize=${newer.treeSize + 10_000}`, {
      token,
    });
    expect(beyond.status).toBe(422);
  }, 60_000);

  it('verify --db recomputes every signed root', async () => {
    const r = await verifyDb(svc.databaseUrl, testKeysDir);
    expect(r.stdout).toMatch(/tree heads\s+\d+ Merkle roots recomputed from the records, each as signed/);
    expect(r.stdout).toMatch(/RESULT: INTACT/);
    expect(r.code).toBe(0);
  }, 60_000);
});

describe('a log of 1,000,000 records', () => {
  let svc: TestService;
  let db: Db;
  const N = 1_000_000;
  const hash = (seq: number) => createHash('sha256').update(`r${seq}`).digest();

  beforeAll(async () => {
    svc = await startTestService();
    ({ db } = createDb({ url: svc.databaseUrl, poolSize: 2, statementTimeoutMs: 120_000 }, createLogger('silent')));
    // Records placed directly (the tree needs only their hashes); each hash is sha256("r" || seq) in hex.
    await svc.sql.query(
      `insert into audit_records (seq, recorded_at, type, account_id, outcome, content, prev_hash, hash)
       select n, now(), 'staff_action', null, null, '{}', '', encode(sha256(('r' || n)::bytea), 'hex')
       from generate_series(1, $1::int) n`,
      [N],
    );
  }, 120_000);
  afterAll(async () => {
    await db.destroy();
    await svc.stop();
  });

  it('built once; random roots and inclusion proofs agree with the reference', async () => {
    const tree = new AuditTree(db);
    await tree.extend(N);
    expect(await tree.built()).toBe(Math.floor(N / 64) * 64);
    const leaves = Array.from({ length: N }, (_, i) => leafHash(hash(i + 1).toString('hex')));
    // The whole log's root by the reference definition; sampled sizes' roots from one pass of the accumulator.
    expect((await tree.root(N)).equals(mth(Array.from({ length: N }, (_, i) => hash(i + 1))))).toBe(true);
    let seed = 42;
    const random = (max: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return 1 + (seed % max);
    };
    const samples = Array.from({ length: 20 }, () => {
      const n = random(N);
      return { n, m: random(n) - 1 };
    }).sort((a, b) => a.n - b.n);
    const roots = new Map<number, Buffer>();
    const acc = new MerkleAccumulator();
    for (const { n } of samples) {
      while (acc.size < n) acc.push(leaves[acc.size]!);
      roots.set(n, acc.root());
    }
    for (const { n, m } of samples) {
      expect((await tree.root(n)).equals(roots.get(n)!)).toBe(true);
      const proof = await tree.prove((subtree) => inclusionProof(m, n, subtree));
      expect(proof.length).toBeLessThanOrEqual(Math.ceil(Math.log2(n)));
      expect(verifyInclusion(m, n, leaves[m]!, proof, roots.get(n)!)).toBe(true);
    }
  }, 300_000);
});
