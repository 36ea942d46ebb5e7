import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { CHECKPOINT_TYP } from '../../src/audit';
import { type AuditRow, auditRows, checkpointAtHead, deleteRedisPrefix } from '../support/audit';
import { adminToken, createAccount, decide, putConsents, uniqueId } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * Signed checkpoints (the BullMQ job, real Redis) and the audit query API (GET /v1/audit/events),
 * against a real service and PostgreSQL.
 */

let svc: TestService;
let admin: string;
let auditor: string;

beforeAll(async () => {
  svc = await startTestService({ RUN_WORKERS: 'true', AUDIT_CHECKPOINT_INTERVAL_MS: '1000', DB_POOL_SIZE: '8' });
  admin = await adminToken(svc);
  auditor = await svc.token('audit:read', [], { subject: 'compliance-officer' });
});
afterAll(async () => {
  await svc.stop();
  await deleteRedisPrefix(svc.config.redis.prefix);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const get = (path: string, token: string | undefined = auditor) => call(svc.url, 'GET', path, { token });

describe('checkpoints', () => {
  const signed: number[] = [];

  beforeAll(async () => {
    const id = await createAccount(svc, admin);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3; i++)
        await decide(svc, admin, { accountId: id, purpose: 'billing', categories: ['billing_info'] });
      signed.push(await checkpointAtHead(svc.sql));
    }
  }, 30_000);

  it('the BullMQ job scheduler signs the head every interval; each run returns the seq it signed', async () => {
    const connection = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
    const queue = new Queue('audit-checkpoint', { connection, prefix: svc.config.redis.prefix });
    try {
      expect(await queue.getJobScheduler('audit-checkpoint')).toMatchObject({ every: 1000 });
      const completed = await queue.getCompleted();
      const seqs = completed.map((j) => (j.returnvalue as { seq?: number }).seq).filter((s) => s !== undefined);
      expect(seqs).toEqual(expect.arrayContaining(signed));
    } finally {
      await queue.close();
      connection.disconnect();
    }
    expect(new Set(signed).size).toBe(3);
  });

  it(
    'GET /v1/audit/checkpoints: newest first, cursor-paginated, each JWS verifies against ' +
      '/.well-known/jwks.json and signs the chain record at its seq',
    async () => {
      const jwks = (await call(svc.url, 'GET', '/.well-known/jwks.json')).body as JSONWebKeySet;
      const keys = createLocalJWKSet(jwks);
      const listed: any[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const r: any = await get(`/v1/audit/checkpoints?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        expect(r.status).toBe(200);
        expect(r.body.checkpoints.length).toBeLessThanOrEqual(2);
        listed.push(...r.body.checkpoints);
        cursor = r.body.nextCursor;
        pages++;
      } while (cursor);
      expect(pages).toBeGreaterThanOrEqual(2);

      const inDb = (await svc.sql.query('select seq, hash, kid, jws from audit_checkpoints order by seq desc')).rows;
      expect(listed.map((c) => c.seq)).toEqual(inDb.map((c) => Number(c.seq)));
      expect(listed.map((c) => c.seq)).toEqual(expect.arrayContaining(signed));

      const records = new Map((await auditRows(svc.databaseUrl)).map((r) => [r.seq, r]));
      for (const c of listed) {
        const { payload, protectedHeader } = await compactVerify(c.jws, keys);
        expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: CHECKPOINT_TYP, kid: jwks.keys[0]!.kid });
        const body = JSON.parse(new TextDecoder().decode(payload));
        expect(body).toEqual({
          iss: 'optgate',
          seq: c.seq,
          hash: c.hash,
          rootHash: c.rootHash,
          signedAt: new Date(c.signedAt).toISOString(),
        });
        // Every checkpoint is a tree head now: its root is the Merkle root of the records up to it.
        expect(c.rootHash).toMatch(/^[0-9a-f]{64}$/);
        expect(body.hash).toBe(records.get(body.seq)!.hash);
        expect(c.kid).toBe(jwks.keys[0]!.kid);
      }
    },
  );

  it('limit bounds and cursor validation', async () => {
    expect((await get('/v1/audit/checkpoints?limit=1000')).status).toBe(200);
    for (const q of ['limit=1001', 'limit=0', 'cursor=not-a-cursor', 'sort=asc']) {
      const r = await get(`/v1/audit/checkpoints?${q}`);
      expect(r.status).toBe(422);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
  });
});

describe('GET /v1/audit/events', () => {
  /** Every page of a query; checks that each page is in seq order and within the limit. */
  async function allPages(query: string, limit = 1000): Promise<any[]> {
    const out: any[] = [];
    let cursor: string | null = null;
    do {
      const r: any = await get(`/v1/audit/events?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.body.events.length).toBeLessThanOrEqual(limit);
      out.push(...r.body.events);
      cursor = r.body.nextCursor;
    } while (cursor);
    return out;
  }

  describe(
    "the regulator's question: every allowed use of X's data between T1 and T2, and the consent behind " + 'each',
    () => {
      let x: string;
      let y: string;
      let t1: string;
      let t2: string;
      const inWindow: { decisionId: string; consentIds: string[] }[] = [];
      const events: Record<string, any> = {};

      beforeAll(async () => {
        [x, y] = [await createAccount(svc, admin), await createAccount(svc, admin)];
        const grant = async (category: string) => {
          const r = await putConsents(svc, admin, x, [{ purpose: 'ad_targeting', category, choice: 'grant' }]);
          expect(r.status).toBe(200);
          return r.body.events[0];
        };
        const allowX = async (categories: string[], purpose = 'ad_targeting') => {
          const r = await decide(svc, admin, { accountId: x, purpose, categories });
          expect(r.body.allow).toBe(true);
          return r.body;
        };
        // Before the window.
        events.g1 = await grant('web_browsing_history');
        await allowX(['web_browsing_history']);
        await decide(svc, admin, { accountId: y, purpose: 'ad_targeting', categories: ['web_browsing_history'] });
        await sleep(15);
        t1 = new Date().toISOString();
        await sleep(15);

        // In the window: allows relying on different consent events, an exception, denials, a batch.
        const d1 = await allowX(['web_browsing_history']);
        inWindow.push({ decisionId: d1.decisionId, consentIds: [events.g1.eventId] });
        events.g2 = await grant('name');
        const d2 = await allowX(['web_browsing_history', 'name']);
        inWindow.push({ decisionId: d2.decisionId, consentIds: [events.g1.eventId, events.g2.eventId] });
        events.g3 = await grant('web_browsing_history'); // renewed
        expect(events.g3.kind).toBe('renewed');
        const d3 = await allowX(['web_browsing_history']);
        inWindow.push({ decisionId: d3.decisionId, consentIds: [events.g3.eventId] });
        const batch = await call(svc.url, 'POST', '/v1/decisions/batch', {
          token: admin,
          body: { purpose: 'ad_targeting', categories: ['name'], accountIds: [y, x] },
        });
        expect(batch.body.results.map((r: { allow: boolean }) => r.allow)).toEqual([false, true]);
        inWindow.push({ decisionId: batch.body.decisionId, consentIds: [events.g2.eventId] });
        const d4 = await allowX(['ip_addresses'], 'fraud_protection');
        inWindow.push({ decisionId: d4.decisionId, consentIds: [] });
        expect(
          (
            await decide(svc, admin, {
              accountId: x,
              purpose: 'data_sale',
              recipient: 'acme-ads',
              categories: ['name'],
            })
          ).body.allow,
        ).toBe(false);
        await putConsents(
          svc,
          admin,
          x,
          [{ purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'revoke' }],
          { affirmative: false },
        );
        expect(
          (await decide(svc, admin, { accountId: x, purpose: 'ad_targeting', categories: ['web_browsing_history'] }))
            .body.allow,
        ).toBe(false);
        await sleep(15);
        t2 = new Date().toISOString();
        await sleep(15);

        // After the window.
        await grant('web_browsing_history');
        await allowX(['web_browsing_history']);
      });

      it('one call returns exactly the allows in [T1, T2), each with the consent events it relied on', async () => {
        const r = await get(
          `/v1/audit/events?accountId=${x}&type=decision&outcome=allow&from=${t1}&to=${t2}&include=consents`,
        );
        expect(r.status).toBe(200);
        expect(r.body.nextCursor).toBeNull();
        expect(r.body.events.map((e: any) => e.data.decisionId)).toEqual(inWindow.map((d) => d.decisionId));
        for (const [i, e] of r.body.events.entries()) {
          expect(e).toMatchObject({ type: 'decision', outcome: 'allow', accountId: x });
          expect(e.recordedAt >= t1 && e.recordedAt < t2).toBe(true);
          expect(e.seq).toEqual(expect.any(Number));
          expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
          expect(e.consents.map((c: { eventId: string }) => c.eventId)).toEqual(inWindow[i]!.consentIds);
          for (const c of e.consents) {
            expect(c).toMatchObject({
              accountId: x,
              purpose: 'ad_targeting',
              channel: 'call_center',
              actorType: 'staff',
              noticeVersion: 'v3',
            });
            expect(['granted', 'renewed']).toContain(c.kind);
            expect(c.missing).toBeUndefined();
          }
        }
        expect(r.body.events[2].consents[0]).toMatchObject({
          eventId: events.g3.eventId,
          kind: 'renewed',
          category: 'web_browsing_history',
        });
      });

      it('the window bounds: `from` is inclusive, `to` exclusive', async () => {
        const all = await allPages(`accountId=${x}`);
        const first = all.find((e) => e.recordedAt >= t1)!;
        const from = await allPages(`accountId=${x}&from=${first.recordedAt}`);
        expect(from[0].seq).toBe(first.seq);
        const to = await allPages(`accountId=${x}&to=${first.recordedAt}`);
        expect(to.every((e) => e.recordedAt < first.recordedAt)).toBe(true);
        expect(to.length + from.length).toBe(all.length);
      });
    },
  );

  describe('filters match the database', () => {
    /** Each query of the API, and the records of the whole log it must select. */
    const cases: [string, (r: AuditRow) => boolean][] = [];
    let acct: string;
    beforeAll(async () => {
      acct = await createAccount(svc, admin);
      await putConsents(svc, admin, acct, [{ purpose: 'data_sale', category: 'name', choice: 'grant' }]);
      await decide(svc, admin, { accountId: acct, purpose: 'data_sale', recipient: 'acme-ads', categories: ['name'] });
      await decide(svc, admin, { accountId: acct, purpose: 'data_sale', recipient: 'acme-ads', categories: ['ssn'] });
      const mid = (await auditRows(svc.databaseUrl))[5]!.recordedAt;
      const iso = mid.toISOString();
      cases.push(
        ['type=consent_event', (r) => r.type === 'consent_event'],
        ['type=decision,staff_action', (r) => r.type === 'decision' || r.type === 'staff_action'],
        ['outcome=deny', (r) => r.outcome === 'deny'],
        ['outcome=allow&type=decision', (r) => r.outcome === 'allow' && r.type === 'decision'],
        [`accountId=${acct}`, (r) => r.accountId === acct],
        [`from=${iso}`, (r) => r.recordedAt >= mid],
        [`to=${iso}`, (r) => r.recordedAt < mid],
        [
          `accountId=${acct}&type=decision&outcome=deny`,
          (r) => r.accountId === acct && r.type === 'decision' && r.outcome === 'deny',
        ],
      );
    });

    it('each filter returns the records of the whole log it selects, paginated in seq order', async () => {
      for (const [query, selects] of cases) {
        const got = await allPages(query, 5);
        const want = await auditRows(svc.databaseUrl, selects);
        expect({ query, seqs: got.map((e) => e.seq) }).toEqual({ query, seqs: want.map((r) => r.seq) });
        expect(got.map((e) => e.hash)).toEqual(want.map((r) => r.hash));
        expect(got.map((e) => e.data)).toEqual(want.map((r) => r.data));
      }
    });

    it('an unknown account returns nothing; an empty window returns nothing', async () => {
      expect((await get(`/v1/audit/events?accountId=${uniqueId('nobody')}`)).body).toEqual({
        events: [],
        nextCursor: null,
      });
      const now = new Date().toISOString();
      expect((await get(`/v1/audit/events?from=${now}&to=${now}`)).body.events).toEqual([]);
    });
  });

  it('pagination is stable while records are being written: no duplicates, no gaps, nothing missed', async () => {
    const ids = await Promise.all([1, 2, 3].map(() => createAccount(svc, admin)));
    await putConsents(svc, admin, ids[0]!, [{ purpose: 'ad_targeting', category: 'name', choice: 'grant' }]);
    let writing = true;
    let written = 0;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      while (writing) {
        const r =
          w % 2
            ? await decide(svc, admin, { accountId: ids[w % 3]!, purpose: 'ad_targeting', categories: ['name'] })
            : await call(svc.url, 'POST', '/v1/decisions/batch', {
                token: admin,
                body: { purpose: 'ad_targeting', categories: ['name'], accountIds: ids },
              });
        expect(r.status).toBe(200);
        written++;
      }
    });
    await until(() => written >= 20);
    const headAtStart = Number((await svc.sql.query('select seq from audit_head')).rows[0].seq);

    const seen: number[] = [];
    const seenAllows: number[] = [];
    let cursor: string | null = null;
    let allowCursor: string | null | undefined;
    const allowPage = async () => {
      const a: any = await get(
        `/v1/audit/events?type=decision&outcome=allow&limit=3${allowCursor ? `&cursor=${allowCursor}` : ''}`,
      );
      seenAllows.push(...a.body.events.map((e: { seq: number }) => e.seq));
      allowCursor = a.body.nextCursor;
    };
    const stopWriting = async () => {
      writing = false;
      await Promise.all(writers);
    };
    // Unfiltered pages of 7 and filtered pages of 3, interleaved with the writers, until the unfiltered listing reaches
    // the end.
    for (let pages = 1; ; pages++) {
      const r: any = await get(`/v1/audit/events?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.events.map((e: { seq: number }) => e.seq));
      cursor = r.body.nextCursor;
      if (!cursor) break;
      if (allowCursor !== null) await allowPage();
      if (pages === 40) await stopWriting();
    }
    await stopWriting();
    while (allowCursor !== null) await allowPage();

    const last = seen.at(-1)!;
    expect(seen).toEqual(seen.map((_, i) => i + 1));
    expect(last).toBeGreaterThan(headAtStart);
    const allowsInDb = (await auditRows(svc.databaseUrl, (r) => r.type === 'decision' && r.outcome === 'allow')).map(
      (r) => r.seq,
    );
    expect(seenAllows).toEqual(allowsInDb.slice(0, seenAllows.length));
    expect(seenAllows.at(-1)).toBeGreaterThan(headAtStart);
    // Each listing ended at the head as it stood then, and the records it returned are the records in the database.
    const rows = await auditRows(svc.databaseUrl, (r) => r.seq <= last);
    expect(rows.map((r) => r.seq)).toEqual(seen);
  }, 60_000);

  it('limit bounds: 1..1000, default 100; bad filters are 422 problems', async () => {
    const def = await get('/v1/audit/events');
    expect(def.status).toBe(200);
    expect(def.body.events).toHaveLength(100);
    expect((await get('/v1/audit/events?limit=1000')).status).toBe(200);
    for (const q of [
      'limit=1001',
      'limit=0',
      'limit=-1',
      'limit=ten',
      'type=gossip',
      'outcome=maybe',
      'from=yesterday',
      'accountId=bad%20id',
      'cursor=bm9wZQ',
      'include=everything',
      'order=desc',
    ]) {
      const r = await get(`/v1/audit/events?${q}`);
      expect({ q, status: r.status }).toEqual({ q, status: 422 });
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.body).toMatchObject({ type: 'urn:optgate:problem:validation', status: 422 });
    }
  });

  it('401 without a token, 403 without the audit:read scope, on every audit route', async () => {
    const pipeline = await svc.token('decisions consents:write accounts:write webhooks:write', ['ad_targeting']);
    for (const [method, path] of [
      ['GET', '/v1/audit/events'],
      ['GET', '/v1/audit/checkpoints'],
      ['POST', '/v1/audit/exports'],
      ['GET', '/v1/audit/exports/00000000-0000-4000-8000-000000000000'],
      ['GET', '/v1/audit/exports/00000000-0000-4000-8000-000000000000/download'],
      ['GET', '/v1/audit/exports/00000000-0000-4000-8000-000000000000/manifest'],
    ] as const) {
      const body = method === 'POST' ? { format: 'ndjson' } : undefined;
      const anonymous = await call(svc.url, method, path, { body });
      expect({ path, status: anonymous.status }).toEqual({ path, status: 401 });
      expect(anonymous.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const forbidden = await call(svc.url, method, path, { token: pipeline, body });
      expect({ path, status: forbidden.status }).toEqual({ path, status: 403 });
      expect(JSON.stringify(forbidden.body)).not.toMatch(/"events"|"checkpoints"|"exportId"/);
    }
    const bad = await call(svc.url, 'GET', '/v1/audit/events', { token: `${auditor.slice(0, -4)}AAAA` });
    expect(bad.status).toBe(401);
  });
});

async function until(ok: () => boolean, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}
