import pg from 'pg';
import { AuditService, AuditWriter, CHECKPOINT_TYP } from '../../src/audit';
import { loadKeys } from '../../src/platform/auth/keys';
import { signJws } from '../../src/platform/auth/signing';
import { createDb } from '../../src/platform/db/database';
import { createLogger } from '../../src/platform/logger';
import { createMetrics } from '../../src/platform/metrics';
import {
  type AuditRow,
  asAttacker,
  auditRows,
  chainProblems,
  cloneDatabase,
  contentOf,
  firstBadSeq,
  forgeJws,
  recordHash,
  verifyDb,
} from '../support/audit';
import { dropDatabase } from '../support/database';
import { adminToken, decide, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The hash chain in PostgreSQL, and `optgate audit verify --db` (the built CLI) against it.
 *
 * One service writes an intact chain of ~30 records, with two heads signed by the service's
 * checkpoint code at chosen moments (the BullMQ job itself is tested in checkpoints-query.test.ts),
 * and stops. Every case then works on its own byte-for-byte copy of that database
 * (CREATE DATABASE … TEMPLATE), so each starts from the same intact chain: the chain in `seed`.
 * Tampering is done the way an attacker with superuser rights would: the append-only triggers are
 * bypassed with `session_replication_role = replica` or `ALTER TABLE … DISABLE TRIGGER USER`.
 */

let seedUrl: string;
let keysDir: string;
let svcConfig: TestService['config'];
/** The intact chain as written, and the two checkpointed sequence numbers. */
let seed: AuditRow[];
let c1: number;
let c2: number;
const clones: string[] = [];

async function produce(svc: TestService, admin: string, ids: { a: string; b: string; c: string }) {
  const one = (accountId: string, purpose = 'ad_targeting') =>
    decide(svc, admin, { accountId, purpose, categories: ['web_browsing_history'] });
  await one(ids.a); // allow
  await one(ids.a); // allow
  await one(ids.b); // deny
  await one(ids.b); // deny
  await call(svc.url, 'POST', '/v1/decisions/batch', {
    token: admin,
    body: { purpose: 'ad_targeting', categories: ['web_browsing_history'], accountIds: [ids.a, ids.b, ids.c] },
  });
  await putConsents(
    svc,
    admin,
    ids.c,
    [{ purpose: 'product_analytics', category: 'other_customer_info', choice: 'opt_out' }],
    { affirmative: false },
  );
}

/**
 * Signs the current chain head with the service's own checkpoint code (what the BullMQ job runs), at a moment the test
 * chooses.
 */
async function signHead(svc: TestService): Promise<number> {
  const { db, pool } = createDb(
    { url: svc.databaseUrl, poolSize: 1, statementTimeoutMs: 5000 },
    createLogger('silent'),
  );
  try {
    const clock = () => new Date();
    const audit = new AuditService({
      db,
      writer: new AuditWriter({ pool, clock, metrics: createMetrics(), timeoutMs: 5000 }),
      keys: await loadKeys(svc.config.auth, svc.config.env),
      clock,
      consentEvents: async () => [],
    });
    return (await audit.checkpoint())!.seq;
  } finally {
    await db.destroy();
  }
}

beforeAll(async () => {
  const svc = await startTestService({ DB_POOL_SIZE: '5' });
  seedUrl = svc.databaseUrl;
  keysDir = svc.config.auth.keysDir;
  svcConfig = svc.config;
  try {
    const admin = await adminToken(svc);
    const [a, b, c] = [uniqueId(), uniqueId(), uniqueId()];
    await call(svc.url, 'POST', '/v1/accounts', {
      token: admin,
      body: { accounts: [a, b, c].map((accountId) => ({ accountId, status: 'active' })) },
    });
    await putConsents(svc, admin, a, [
      { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
      { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
    ]);
    await produce(svc, admin, { a, b, c });
    c1 = await signHead(svc);
    await produce(svc, admin, { a, b, c });
    c2 = await signHead(svc);
    // The tail: records after the last checkpoint.
    await produce(svc, admin, { a, b, c });
    seed = await auditRows(svc.databaseUrl);
  } finally {
    await svc.close();
    await svc.sql.end();
  }
}, 60_000);

afterAll(async () => {
  for (const url of [...clones, seedUrl]) await dropDatabase(url);
});

async function copy(): Promise<string> {
  const url = await cloneDatabase(seedUrl);
  clones.push(url);
  return url;
}

async function withPool<T>(url: string, fn: (p: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => undefined);
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

const at = (seq: number) => seed.find((r) => r.seq === seq)!;

async function expectTampered(url: string, firstBad: number | undefined, pattern?: RegExp) {
  const r = await verifyDb(url, keysDir);
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/RESULT: TAMPERED/);
  expect(r.code).toBe(1);
  if (firstBad !== undefined) expect(firstBadSeq(r.stdout)).toBe(firstBad);
  if (pattern) expect(r.stdout).toMatch(pattern);
  return r.stdout;
}

describe('the intact chain', () => {
  it('the seed is what the test needs: ~30 records, two checkpoints, a tail after the last one', () => {
    expect(seed.length).toBeGreaterThanOrEqual(25);
    expect(c1).toBeGreaterThan(8);
    expect(c2).toBeGreaterThan(c1 + 5);
    expect(seed.length).toBeGreaterThan(c2 + 5);
    expect(new Set(seed.map((r) => r.type))).toEqual(new Set(['staff_action', 'consent_event', 'decision']));
  });

  it(
    'is gap-free 1..N, every prevHash links to the previous hash, every hash recomputes, the head is the last ' +
      'record',
    async () => {
      expect(seed.map((r) => r.seq)).toEqual(seed.map((_, i) => i + 1));
      expect(chainProblems(seed)).toEqual([]);
      await withPool(await copy(), async (p) => {
        const head = (await p.query('select seq, hash from audit_head')).rows[0];
        expect(Number(head.seq)).toBe(seed.length);
        expect(head.hash).toBe(seed.at(-1)!.hash);
        const cps = (await p.query('select seq, hash from audit_checkpoints order by seq')).rows;
        for (const cp of cps) expect(cp.hash).toBe(at(Number(cp.seq)).hash);
      });
    },
  );

  it('recorded_at never goes backwards along the chain', () => {
    for (let i = 1; i < seed.length; i++)
      expect(seed[i]!.recordedAt.getTime()).toBeGreaterThanOrEqual(seed[i - 1]!.recordedAt.getTime());
  });

  it('`optgate audit verify --db` exits 0 and says INTACT', async () => {
    const url = await copy();
    const r = await verifyDb(url, keysDir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`records\\s+${seed.length} \\(seq 1 … ${seed.length}\\)`));
    expect(r.stdout).toMatch(/checkpoints\s+2 signed heads, every signature valid/);
    expect(r.stdout).toMatch(/RESULT: INTACT\n$/);
  });

  describe('PostgreSQL refuses changes to the log', () => {
    let url: string;
    beforeAll(async () => {
      url = await copy();
    });

    it.each([
      ['UPDATE audit_records', `update audit_records set outcome = 'allow' where seq = 3`],
      ['DELETE audit_records', 'delete from audit_records where seq = 3'],
      ['TRUNCATE audit_records', 'truncate audit_records'],
      ['UPDATE audit_decisions', `update audit_decisions set purpose = 'data_sale'`],
      ['DELETE audit_decisions', 'delete from audit_decisions'],
      ['TRUNCATE audit_decisions', 'truncate audit_decisions'],
      ['UPDATE audit_verdicts', `update audit_verdicts set account_id = 'A-other'`],
      ['DELETE audit_verdicts', 'delete from audit_verdicts'],
      ['TRUNCATE audit_verdicts', 'truncate audit_verdicts'],
      ['UPDATE audit_checkpoints', `update audit_checkpoints set hash = repeat('f', 64)`],
      ['DELETE audit_checkpoints', 'delete from audit_checkpoints'],
    ])('%s', async (_name, statement) => {
      await withPool(url, async (p) => {
        await expect(p.query(statement)).rejects.toMatchObject({
          code: '42501',
          message: expect.stringMatching(/is append-only: (UPDATE|DELETE|TRUNCATE) refused/),
        });
        expect(Number((await p.query('select count(*) from audit_checkpoints')).rows[0].count)).toBe(2);
      });
      expect((await auditRows(url)).map((r) => r.hash)).toEqual(seed.map((r) => r.hash));
    });

    // The signed heads are the evidence against a rewrite with recomputed hashes: they cannot be emptied either.
    it('TRUNCATE audit_checkpoints', async () => {
      await withPool(url, async (p) => {
        const client = await p.connect();
        try {
          await client.query('begin');
          await expect(client.query('truncate audit_checkpoints')).rejects.toMatchObject({ code: '42501' });
        } finally {
          await client.query('rollback').catch(() => undefined);
          client.release();
        }
      });
    });
  });
});

/** Where a record of the seed is stored: a plain row, a single decision's header, or a batch's verdict row. */
const storage = (r: AuditRow) =>
  r.type !== 'decision' ? 'plain' : r.data.endpoint === 'single' ? 'single' : ('batch' as const);
const first = (kind: ReturnType<typeof storage>, o: { after?: number; before?: number; outcome?: string } = {}) =>
  seed.find(
    (r) =>
      storage(r) === kind &&
      r.seq > (o.after ?? 0) &&
      r.seq < (o.before ?? Number.MAX_SAFE_INTEGER) &&
      (o.outcome === undefined || r.outcome === o.outcome),
  )!;
/** The first seq of the batch that holds `seq` (batch records share a decisionId). */
const batchStart = (seq: number) => seed.find((r) => r.data.decisionId === at(seq).data.decisionId)!.seq;

describe('tampering is detected: `audit verify --db` exits 1 naming the first bad sequence', () => {
  it("a changed payload: a plain record's content edited, its hash left alone", async () => {
    const url = await copy();
    // A consent event (the first plain records are the accounts' own records, which name no purpose).
    const target = seed.find((r) => r.type === 'consent_event' && r.data.purpose === 'ad_targeting')!;
    await asAttacker(url, (c) =>
      c.query(
        `update audit_records set content = replace(content, '"purpose":"ad_targeting"', ` +
          `'"purpose":"data_sale"') where seq = $1`,
        [target.seq],
      ),
    );
    await expectTampered(url, target.seq, /altered: the content does not match its hash/);
  });

  it("a changed payload: a single decision's purpose rewritten in its header", async () => {
    const url = await copy();
    const target = first('single', { outcome: 'allow', before: c1 });
    await asAttacker(url, (c) =>
      c.query(`update audit_decisions set purpose = 'fraud_protection' where seq = $1`, [target.seq]),
    );
    await expectTampered(url, target.seq, /altered: the content does not match its hash/);
  });

  it("a single decision's request id (stored once, as its decision id) changed behind the log's back", async () => {
    const url = await copy();
    const target = first('single', { outcome: 'deny', before: c1 });
    // Written without an X-Request-Id: optgate issued the request id, and it is the decision id, stored once.
    expect(target.data.requestId).toBe(target.data.decisionId);
    await asAttacker(url, (c) =>
      c.query(`update audit_decisions set request_id = 'another-request' where seq = $1 and request_id is null`, [
        target.seq,
      ]),
    );
    await expectTampered(url, target.seq, /altered: the content does not match its hash/);
  });

  it('a changed payload: a deny of a batch turned into an allow of another account', async () => {
    const url = await copy();
    const target = first('batch', { outcome: 'deny', after: c1, before: c2 });
    await asAttacker(url, (c) =>
      c.query(`update audit_verdicts set account_id = 'A-someone-else' where seq = $1`, [target.seq]),
    );
    // Batch records keep no hash of their own: the tile of their batch no longer ends where its header says.
    await expectTampered(url, batchStart(target.seq), /does not match the links its header keeps/);
  });

  it('verdict bytes that no longer decode are an altered record, not a crash', async () => {
    const url = await copy();
    const single = first('single', { after: c1 });
    await asAttacker(url, (c) =>
      c.query(`update audit_decisions set verdict = '\\x01ff'::bytea where seq = $1`, [single.seq]),
    );
    await expectTampered(url, single.seq, /altered/);
  });

  it('a deleted record (triggers disabled with ALTER TABLE … DISABLE TRIGGER USER)', async () => {
    const url = await copy();
    const target = first('single', { after: 5 });
    await withPool(url, async (p) => {
      await p.query('alter table audit_decisions disable trigger user');
      await p.query('delete from audit_decisions where seq = $1', [target.seq]);
      await p.query('alter table audit_decisions enable trigger user');
    });
    await expectTampered(
      url,
      target.seq,
      new RegExp(`missing: the sequence jumps from ${target.seq - 1} to ${target.seq + 1}`),
    );
  });

  it('a deleted record in the tail, after the last checkpoint', async () => {
    const url = await copy();
    const target = first('single', { after: c2 + 1 });
    await asAttacker(url, (c) => c.query('delete from audit_decisions where seq = $1', [target.seq]));
    await expectTampered(url, target.seq);
  });

  it('a deleted record of a batch: the sequence jumps, and its tile is named from its start', async () => {
    const url = await copy();
    const target = first('batch', { after: c2 });
    await asAttacker(url, (c) => c.query('delete from audit_verdicts where seq = $1', [target.seq + 1]));
    await expectTampered(url, batchStart(target.seq), /does not match the links its header keeps|missing/);
  });

  it('the last records cut off and the head moved back: the checkpoint that signed them fails', async () => {
    const url = await copy();
    // A record that ends an item (a plain record or a single decision), before the last checkpoint.
    const keep = [...seed].reverse().find((r) => r.seq < c2 - 2 && storage(r) !== 'batch')!;
    await asAttacker(url, async (c) => {
      for (const table of ['audit_records', 'audit_decisions', 'audit_verdicts']) {
        await c.query(`delete from ${table} where seq > $1`, [keep.seq]);
      }
      await c.query('update audit_head set seq = $1, hash = $2, recorded_at = $3', [
        keep.seq,
        keep.hash,
        keep.recordedAt,
      ]);
    });
    await expectTampered(
      url,
      undefined,
      new RegExp(`checkpoint\\s+FAILED: seq ${c2}: signed, but there is no such record`),
    );
  });

  /**
   * Moves records seq >= k one place up (in every table) and puts a well-formed forged allow at k,
   * linked to k-1 and correctly hashed, as a plain record.
   */
  async function insertAt(url: string, k: number) {
    const before = at(k - 1);
    const forged = contentOf({
      seq: k,
      recordedAt: before.recordedAt.toISOString(),
      type: 'decision',
      accountId: before.accountId ?? 'A-forged',
      outcome: 'allow',
      data: {
        decisionId: '00000000-0000-4000-8000-000000000000',
        endpoint: 'single',
        clientId: 'data-broker',
        purpose: 'data_sale',
        categories: ['ssn'],
        results: [{ category: 'ssn', allow: true, reason: 'consent_granted' }],
      },
    });
    await asAttacker(url, async (c) => {
      for (const table of ['audit_records', 'audit_decisions', 'audit_verdicts']) {
        await c.query(`update ${table} set seq = seq + 1000000 where seq >= $1`, [k]);
        await c.query(`update ${table} set seq = seq - 999999 where seq >= 1000000`);
      }
      await c.query(
        `insert into audit_records (seq, recorded_at, type, account_id, outcome, content, prev_hash, hash) ` +
          `values ($1, $2, 'decision', $3, 'allow', $4, $5, $6)`,
        [k, before.recordedAt, before.accountId ?? 'A-forged', forged, before.hash, recordHash(before.hash, forged)],
      );
      await c.query('update audit_head set seq = seq + 1');
    });
  }

  // The forged record itself is well-formed and links to k-1: the first record that cannot be
  // valid is the displaced original, now at k+1, whose prevHash is not the forged record's hash.
  it('an inserted record (in the tail, later records moved up one place)', async () => {
    const url = await copy();
    const k = first('plain', { after: c2 }).seq;
    await insertAt(url, k);
    await expectTampered(url, k + 1, new RegExp(`broken link: prevHash is not the hash of seq ${k}`));
  });

  // The chain is checked page by page and the checkpoints along it: the report names the earliest bad sequence.
  it(
    'an inserted record before a checkpoint: the report still names the first bad sequence, not the ' + 'checkpoint',
    async () => {
      const url = await copy();
      const k = first('single', { after: c1 }).seq;
      await insertAt(url, k);
      await expectTampered(url, k + 1);
    },
  );

  it('two plain records swapped (contents, hashes and columns exchanged)', async () => {
    const url = await copy();
    const x = seed.find((r, i) => storage(r) === 'plain' && seed[i + 1] && storage(seed[i + 1]!) === 'plain')!;
    const y = at(x.seq + 1);
    await asAttacker(url, async (c) => {
      const set =
        `update audit_records set recorded_at = $2, type = $3, account_id = $4, outcome = $5, content ` +
        `= $6, prev_hash = $7, hash = $8 where seq = $1`;
      await c.query(set, [x.seq, y.recordedAt, y.type, y.accountId, y.outcome, y.content, y.prevHash, y.hash]);
      await c.query(set, [y.seq, x.recordedAt, x.type, x.accountId, x.outcome, x.content, x.prevHash, x.hash]);
    });
    await expectTampered(url, x.seq, /broken link/);
  });

  it('two accounts of a batch swapped: the batch is named', async () => {
    const url = await copy();
    const start = first('batch', { after: c1 }).seq;
    await asAttacker(url, async (c) => {
      const { rows } = await c.query('select seq, account_id, verdict from audit_verdicts where seq in ($1, $2)', [
        start,
        start + 1,
      ]);
      const [x, y] = rows;
      await c.query('update audit_verdicts set account_id = $2, verdict = $3 where seq = $1', [
        x.seq,
        y.account_id,
        y.verdict,
      ]);
      await c.query('update audit_verdicts set account_id = $2, verdict = $3 where seq = $1', [
        y.seq,
        x.account_id,
        x.verdict,
      ]);
    });
    await expectTampered(url, start, /does not match the links its header keeps/);
  });

  it(
    'a changed filter column (a consent event shown under another account), the hashed content left ' + 'alone',
    async () => {
      const url = await copy();
      const target = first('plain', { after: c1 });
      await asAttacker(url, (c) =>
        c.query(`update audit_records set account_id = 'A-someone-else' where seq = $1`, [target.seq]),
      );
      await expectTampered(url, target.seq, /altered: the filter columns differ from the hashed content/);
    },
  );

  it(
    'a chain rewritten from a single decision on, every hash recomputed and the head moved: caught ' +
      'by the signed checkpoint',
    async () => {
      const url = await copy();
      const from = first('single', { outcome: 'deny', before: c1 });
      const rewritten = new Map<number, { content: string; prevHash: string; hash: string }>();
      let prev = at(from.seq - 1).hash;
      for (const r of seed.filter((x) => x.seq >= from.seq)) {
        // The attacker turns the deny into an allow for a sale, then recomputes every link after it.
        const content =
          r.seq === from.seq ? r.content.replace('"purpose":"ad_targeting"', '"purpose":"data_sale"') : r.content;
        // With each record's account salt (format 3), which the attacker reads with the rest.
        const hash = recordHash(prev, content, true, r.accountSalt);
        rewritten.set(r.seq, { content, prevHash: prev, hash });
        prev = hash;
      }
      await asAttacker(url, async (c) => {
        await c.query(`update audit_decisions set purpose = 'data_sale' where seq = $1`, [from.seq]);
        for (const [seq, r] of rewritten) {
          await c.query('update audit_records set content = $2, prev_hash = $3, hash = $4 where seq = $1', [
            seq,
            r.content,
            r.prevHash,
            r.hash,
          ]);
        }
        // Each decision header keeps the link before every 64th of its records and the one after its last.
        const { rows } = await c.query('select seq, count from audit_decisions where seq >= $1', [from.seq]);
        for (const h of rows) {
          const s = Number(h.seq);
          const links = [];
          for (let i = 0; i < h.count; i += 64) links.push(rewritten.get(s + i)!.prevHash);
          links.push(rewritten.get(s + h.count - 1)!.hash);
          await c.query('update audit_decisions set links = $2 where seq = $1', [
            s,
            Buffer.from(links.join(''), 'hex'),
          ]);
        }
        await c.query('update audit_head set hash = $1', [prev]);
      });
      // Every link and hash is consistent again; only the signature over the head at c1 tells.
      await expectTampered(
        url,
        c1,
        new RegExp(`checkpoint\\s+FAILED: seq ${c1}: the record's hash differs from the signed one`),
      );
    },
  );

  describe('forged checkpoints', () => {
    it('a checkpoint row signed with another key (claiming the service key id): FAILED checkpoint', async () => {
      const url = await copy();
      const target = at(c1 + 4);
      const { kid } = (await loadKeys(svcConfig.auth, svcConfig.env)).signing;
      const jws = await forgeJws(
        { iss: 'optgate', seq: target.seq, hash: target.hash, signedAt: new Date().toISOString() },
        CHECKPOINT_TYP,
        kid,
      );
      await withPool(url, (p) =>
        p.query('insert into audit_checkpoints (seq, hash, signed_at, kid, jws) values ($1, $2, now(), $3, $4)', [
          target.seq,
          target.hash,
          kid,
          jws,
        ]),
      );
      await expectTampered(
        url,
        undefined,
        new RegExp(`checkpoint\\s+FAILED: seq ${target.seq}: signature does not verify`),
      );
    });

    it('a checkpoint row whose hash was changed after signing: FAILED checkpoint', async () => {
      const url = await copy();
      await asAttacker(url, (c) => c.query(`update audit_checkpoints set hash = repeat('a', 64) where seq = $1`, [c1]));
      await expectTampered(
        url,
        undefined,
        new RegExp(`checkpoint\\s+FAILED: seq ${c1}: the row differs from what was signed`),
      );
    });

    it('a validly signed checkpoint whose hash is not the record’s: the record is named', async () => {
      const url = await copy();
      const target = at(c1 + 4);
      const keys = await loadKeys(svcConfig.auth, svcConfig.env);
      const wrong = 'b'.repeat(64);
      const jws = await signJws(
        keys,
        { iss: 'optgate', seq: target.seq, hash: wrong, signedAt: new Date().toISOString() },
        CHECKPOINT_TYP,
      );
      await withPool(url, (p) =>
        p.query('insert into audit_checkpoints (seq, hash, signed_at, kid, jws) values ($1, $2, now(), $3, $4)', [
          target.seq,
          wrong,
          keys.signing.kid,
          jws,
        ]),
      );
      await expectTampered(url, target.seq, /does not match the signed checkpoint/);
    });
  });
});
