import { randomUUID } from 'node:crypto';
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { receiptPayloadSchema } from '../../src/consent';
import { csrfOf, PortalClient, receiptIdsOf, signInUrl, textOf } from '../support/browser';
import { adminToken, createAccount, putConsents } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * One act, one record; receipts to a standard (issue 11, points 5 and 6). A bulk act is one history entry and one
 * receipt listing every item it changed; the receipt is signed once, when the act is recorded, and stored: every
 * download returns the same bytes, and they verify against /.well-known/jwks.json. Its payload carries the Kantara
 * Consent Receipt / ISO/IEC TS 27560 fields. An event without a receipt of its act (the system's, or one recorded
 * before receipts were kept) gets its own on first request, stored.
 */

let svc: TestService;
let admin: string;
let jwks: JSONWebKeySet;

beforeAll(async () => {
  svc = await startTestService({ PORTAL_SIGNIN_PER_MINUTE: '10000' });
  admin = await adminToken(svc);
  jwks = (await call(svc.url, 'GET', '/.well-known/jwks.json')).body;
});
afterAll(() => svc.stop());

async function signedIn(accountId?: string): Promise<{ client: PortalClient; accountId: string }> {
  const id = accountId ?? (await createAccount(svc, admin));
  const client = new PortalClient(svc.url);
  await client.signIn(await signInUrl(svc, id));
  return { client, accountId: id };
}

/** The history's entries (rows) and their receipt links, newest first. */
async function history(client: PortalClient) {
  const page = await client.get('/history');
  const rows = [...page.body.matchAll(/<tr>\s*<td([\s\S]*?)<\/tr>/g)].map((m) => m[1]!);
  return rows.map((row) => ({ items: [...row.matchAll(/<li>([\s\S]*?)<\/li>/g)].map((li) => textOf(li[1]!)), row }));
}

/** Downloads a receipt twice; the bytes must be the same. */
async function downloadTwice(client: PortalClient, receiptId: string, file: 'receipt.jws' | 'receipt.json') {
  const [a, b] = [
    await client.get(`/receipts/${receiptId}/${file}`),
    await client.get(`/receipts/${receiptId}/${file}`),
  ];
  expect([a.status, b.status]).toEqual([200, 200]);
  expect(b.body).toBe(a.body);
  return a;
}

async function verified(jws: string) {
  const { payload, protectedHeader } = await compactVerify(jws, createLocalJWKSet(jwks));
  expect(protectedHeader.typ).toBe('optgate-receipt+jws');
  const text = new TextDecoder().decode(payload);
  return { text, payload: receiptPayloadSchema.parse(JSON.parse(text)) };
}

it('revoke-all of several items is one history entry and one receipt listing every item, signed once', async () => {
  const { client, accountId } = await signedIn();
  const put = await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
    { purpose: 'ad_targeting', category: 'health', choice: 'grant' },
    { purpose: 'data_sale', category: 'web_browsing_history', choice: 'grant', recipients: ['databroker-one'] },
  ]);
  expect(put.status).toBe(200);
  expect(await history(client)).toHaveLength(1);

  const csrf = csrfOf((await client.get('/choices')).body)!;
  const r = await client.post('/choices/revoke-all', { _csrf: csrf });
  expect(r.location).toBe('/choices/saved');

  // The events of the act, in the order recorded, all naming one receipt.
  const { rows } = await svc.sql.query(
    'select event_id, purpose, category, kind, receipt_id from consent_events ' +
      "where account_id = $1 and channel = 'portal' order by id",
    [accountId],
  );
  const kinds = rows.map((e) => `${e.purpose}:${e.category}:${e.kind}`);
  expect(kinds).toEqual(
    expect.arrayContaining([
      'ad_targeting:name:revoked',
      'ad_targeting:health:revoked',
      'data_sale:web_browsing_history:revoked',
      'product_analytics:other_customer_info:opted_out',
    ]),
  );
  const receiptIds = new Set(rows.map((e) => e.receipt_id));
  expect(receiptIds.size).toBe(1);
  const [receiptId] = [...receiptIds] as [string];

  // The confirmation: every item, and one receipt.
  const saved = await client.get('/choices/saved');
  expect(receiptIdsOf(saved.body)).toEqual([receiptId]);
  const listed = /<ul class="changes">([\s\S]*?)<\/ul>/.exec(saved.body)![1]!;
  expect([...listed.matchAll(/<li>/g)]).toHaveLength(rows.length);

  // The history: one more entry, listing every item, with that one receipt.
  const entries = await history(client);
  expect(entries).toHaveLength(2);
  expect(receiptIdsOf(entries[0]!.row)).toEqual([receiptId]);
  expect(entries[0]!.items).toHaveLength(rows.length);
  expect(entries[0]!.items).toContain('Targeted advertising: Health information: You took it back');
  expect(receiptIdsOf(entries[1]!.row)).toEqual([put.body.receiptId]);

  // Stored once; downloads are byte-identical, the signature verifies against the published keys.
  const stored = await svc.sql.query('select event_ids, jws from consent_receipts where receipt_id = $1', [receiptId]);
  expect(stored.rows[0].event_ids).toEqual(rows.map((e) => e.event_id));
  const jws = (await downloadTwice(client, receiptId, 'receipt.jws')).body;
  expect(jws).toBe(stored.rows[0].jws);
  const { text, payload } = await verified(jws);
  const json = await downloadTwice(client, receiptId, 'receipt.json');
  expect(json.headers.get('content-type')).toMatch(/^application\/json/);
  expect(json.body).toBe(text);

  const { brand } = svc.config;
  const notice = svc.config.catalog.noticesByVersion.get('v3')!;
  expect(payload).toMatchObject({
    version: 'KI-CR-v1.1.0',
    jurisdiction: 'US-ME',
    collectionMethod: 'portal',
    consentReceiptID: receiptId,
    language: 'en',
    piiPrincipalId: accountId,
    piiControllers: [
      {
        piiController: brand.legalName,
        address: brand.contact.address.join(', '),
        email: brand.contact.email,
        phone: brand.contact.phone,
      },
    ],
    policyUrl: brand.policyUrl,
    notice: { version: 'v3', sha256: notice.sha256, url: `${svc.config.portal.baseUrl}/notice/v3` },
    sensitive: true,
    spiCat: ['Health information'],
    withdrawal: { url: `${svc.config.portal.baseUrl}/choices`, phone: brand.contact.phone },
    actor: { type: 'subscriber' },
  });
  expect(payload.consentTimestamp).toBe(Math.floor(Date.parse(payload.recordedAt) / 1000));
  expect(payload.changes.map((c) => c.eventId)).toEqual(rows.map((e) => e.event_id));
  expect(payload.changes.map((c) => `${c.purpose}:${c.category}:${c.change}`)).toEqual(kinds);
  const health = payload.changes.find((c) => c.category === 'health')!;
  const name = payload.changes.find((c) => c.category === 'name')!;
  expect([health.sensitive, name.sensitive]).toEqual([true, false]);
  const purposes = payload.services[0]!.purposes;
  expect(purposes.map((p) => p.purposeId)).toEqual([...new Set(rows.map((e) => e.purpose))]);
  expect(purposes.every((p) => p.consentType === 'EXPLICIT')).toBe(true);
  expect(purposes.find((p) => p.purposeId === 'data_sale')).toMatchObject({
    thirdPartyDisclosure: true,
    // A revocation covers every recipient: none is named.
    thirdPartyName: [],
  });

  // The page: the same facts in words, the downloads, how to check it.
  const page = await client.get(`/receipts/${receiptId}`);
  expect(page.status).toBe(200);
  const words = textOf(page.body);
  expect(words).toMatch(/On \w{3} \d+, \d{4}, \d+:\d\d [AP]M UTC, you took back: Targeted advertising: Your name/);
  expect(words).toContain('Targeted advertising: Health information sensitive information');
  expect(words).toContain('you said no to: Targeted advertising: Other information about your account (not personal)');
  expect(words).toContain(`${brand.legalName} is responsible for your information`);
  expect(words).toContain('You can change or take back any of these choices at any time, here: My choices');
  for (const [href, label] of [
    [`/receipts/${receiptId}/receipt.json`, 'Download (JSON)'],
    [`/receipts/${receiptId}/receipt.jws`, 'Download (signed)'],
  ]) {
    expect(page.body).toContain(`<a class="button" href="${href}" download>${label}</a>`);
  }
  expect(words).toContain('anyone can check it with our public keys, published at /.well-known/jwks.json');
  expect(/<pre class="jws">([^<]+)<\/pre>/.exec(page.body)![1]).toBe(jws);
});

it(
  'a staff change through the API with several items: one receipt, the same receiptUrl on every event, naming ' +
    'how staff verified the subscriber, the ticket and the recipients by legal name',
  async () => {
    const { client, accountId } = await signedIn();
    const put = await putConsents(svc, admin, accountId, [
      { purpose: 'data_sale', category: 'name', choice: 'grant', recipients: ['databroker-one'] },
      { purpose: 'ad_targeting', category: 'precise_geolocation', choice: 'grant' },
      { purpose: 'ad_targeting', category: 'demographics', choice: 'revoke' },
    ]);
    expect(put.status).toBe(200);
    const { receiptId, receiptUrl, events } = put.body;
    expect(receiptUrl).toBe(`${svc.config.portal.baseUrl}/receipts/${receiptId}`);
    expect(events).toHaveLength(3);
    for (const e of events) expect(e).toMatchObject({ receiptId, receiptUrl });
    expect(await svc.sql.query('select 1 from consent_receipts where account_id = $1', [accountId])).toMatchObject({
      rowCount: 1,
    });

    // An event's id leads to its act's receipt.
    const byEvent = await client.get(`/receipts/${events[1].eventId}`);
    expect(byEvent.status).toBe(303);
    expect(byEvent.location).toBe(`/receipts/${receiptId}`);
    expect((await client.get(`/receipts/${events[1].eventId}/receipt.jws`)).location).toBe(
      `/receipts/${receiptId}/receipt.jws`,
    );

    const { payload } = await verified((await downloadTwice(client, receiptId, 'receipt.jws')).body);
    expect(payload).toMatchObject({
      collectionMethod: 'call_center',
      actor: { type: 'staff', verification: 'account_pin', reference: 'CALL-20261203-0042' },
      sensitive: true,
      spiCat: ['Precise geolocation'],
    });
    expect(JSON.stringify(payload)).not.toContain('agent-7');
    expect(payload.changes).toEqual([
      {
        eventId: events[0].eventId,
        purpose: 'data_sale',
        category: 'name',
        change: 'granted',
        expiresAt: events[0].expiresAt,
        recipients: [{ id: 'databroker-one', legalName: 'Data Broker One, Inc.' }],
        sensitive: false,
      },
      {
        eventId: events[1].eventId,
        purpose: 'ad_targeting',
        category: 'precise_geolocation',
        change: 'granted',
        expiresAt: events[1].expiresAt,
        sensitive: true,
      },
      {
        eventId: events[2].eventId,
        purpose: 'ad_targeting',
        category: 'demographics',
        change: 'declined',
        sensitive: false,
      },
    ]);
    expect(payload.services[0]!.purposes).toEqual([
      expect.objectContaining({
        purposeId: 'data_sale',
        purposeCategory: ['sale'],
        consentType: 'EXPLICIT',
        piiCategory: ['Your name'],
        thirdPartyDisclosure: true,
        thirdPartyName: ['Data Broker One, Inc.'],
      }),
      expect.objectContaining({
        purposeId: 'ad_targeting',
        purposeCategory: ['advertising'],
        piiCategory: ['Precise geolocation', 'Demographic information'],
        thirdPartyDisclosure: false,
        thirdPartyName: [],
      }),
    ]);

    // The audit records name the receipt: log and receipt are linked.
    const audit = await call(svc.url, 'GET', `/v1/audit/events?accountId=${accountId}&type=consent_event`, {
      token: admin,
    });
    expect(audit.body.events.map((e: { data: { receiptId: string } }) => e.data.receiptId)).toEqual([
      receiptId,
      receiptId,
      receiptId,
    ]);

    const words = textOf((await client.get(`/receipts/${receiptId}`)).body);
    expect(words).toContain('you allowed: Selling your data: Your name');
    expect(words).toContain('Companies it covers: Data Broker One, Inc.');
    expect(words).toContain('you said no to: Targeted advertising: Demographic information (such as age)');
    expect(words).toContain('Who Our staff, on your instruction');
    expect(words).toContain('How we checked it was you Your account PIN');
    expect(words).toContain('Call or ticket CALL-20261203-0042');
    // One history entry for the call.
    expect(await history(client)).toHaveLength(1);
  },
);

it('an event the system recorded gets its own receipt on first request, stored: the same bytes each time', async () => {
  const { client, accountId } = await signedIn();
  await putConsents(svc, admin, accountId, [
    { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
    { purpose: 'ad_targeting', category: 'web_browsing_history', choice: 'grant' },
  ]);
  // Closing the account ends both opt-ins: two `lapsed` events, each its own entry.
  const closed = await call(svc.url, 'POST', '/v1/accounts', {
    token: admin,
    body: { accounts: [{ accountId, status: 'closed' }] },
  });
  expect(closed.status).toBe(200);
  const { rows } = await svc.sql.query(
    "select event_id, receipt_id from consent_events where account_id = $1 and kind = 'lapsed' order by id",
    [accountId],
  );
  expect(rows).toHaveLength(2);
  expect(rows.every((e) => e.receipt_id === null)).toBe(true);
  const entries = await history(client);
  expect(entries).toHaveLength(3);
  const lapsed = rows.map((e) => e.event_id as string);
  expect(entries.slice(0, 2).map((e) => receiptIdsOf(e.row)[0])).toEqual([...lapsed].reverse());

  const stored = async (id: string) =>
    (await svc.sql.query('select jws from consent_receipts where receipt_id = $1', [id])).rows[0]?.jws;
  expect(await stored(lapsed[0]!)).toBeUndefined();
  const jws = (await downloadTwice(client, lapsed[0]!, 'receipt.jws')).body;
  expect(await stored(lapsed[0]!)).toBe(jws);
  const { payload } = await verified(jws);
  expect(payload).toMatchObject({
    consentReceiptID: lapsed[0],
    collectionMethod: 'system',
    actor: { type: 'system' },
    changes: [{ eventId: lapsed[0], change: 'lapsed', category: 'name', sensitive: false }],
    services: [{ purposes: [{ consentType: 'NONE' }] }],
  });
  expect(textOf((await client.get(`/receipts/${lapsed[0]}`)).body)).toContain(
    'these permissions ended when your account was closed: Targeted advertising: Your name',
  );

  // Concurrent first requests end with the same bytes: the first stored wins.
  const concurrent = await Promise.all([1, 2, 3].map(() => client.get(`/receipts/${lapsed[1]}/receipt.jws`)));
  expect(new Set(concurrent.map((r) => r.body)).size).toBe(1);
  expect(await stored(lapsed[1]!)).toBe(concurrent[0]!.body);
});

it('an event recorded before receipts were kept gets its own receipt, stored', async () => {
  const { client, accountId } = await signedIn();
  const eventId = randomUUID();
  const notice = svc.config.catalog.noticesByVersion.get('v3')!;
  // As migration 0016 left it: no receipt_id.
  await svc.sql.query(
    `insert into consent_events (event_id, account_id, purpose, category, kind, actor_type, channel, notice_version,
       notice_sha256, occurred_at, expires_at)
     values ($1, $2, 'product_analytics', 'financial', 'granted', 'subscriber', 'portal', 'v3', $3,
       '2026-01-02T03:04:05.678Z', '2027-01-02T03:04:05.678Z')`,
    [eventId, accountId, notice.sha256],
  );
  expect(receiptIdsOf((await history(client))[0]!.row)).toEqual([eventId]);
  const jws = (await downloadTwice(client, eventId, 'receipt.jws')).body;
  const { payload } = await verified(jws);
  expect(payload).toMatchObject({
    consentReceiptID: eventId,
    consentTimestamp: Math.floor(Date.parse('2026-01-02T03:04:05.678Z') / 1000),
    recordedAt: '2026-01-02T03:04:05.678Z',
    collectionMethod: 'portal',
    language: 'en',
    changes: [{ eventId, change: 'granted', expiresAt: '2027-01-02T03:04:05.678Z', sensitive: true }],
  });
  expect((await downloadTwice(client, eventId, 'receipt.json')).body).toBe(
    Buffer.from(jws.split('.')[1]!, 'base64url').toString(),
  );
});

it("another account's receipt, or event, is not found", async () => {
  const alice = await signedIn();
  const bob = await signedIn();
  const put = await putConsents(svc, admin, alice.accountId, [
    { purpose: 'ad_targeting', category: 'name', choice: 'grant' },
  ]);
  const { receiptId } = put.body;
  const eventId = put.body.events[0].eventId;
  expect((await alice.client.get(`/receipts/${receiptId}`)).status).toBe(200);
  for (const id of [receiptId, eventId]) {
    for (const file of ['', '/receipt.jws', '/receipt.json', '/proof.json']) {
      const r = await bob.client.get(`/receipts/${id}${file}`);
      expect({ file, status: r.status }).toEqual({ file, status: 404 });
      expect(r.body).not.toContain(alice.accountId);
      expect(r.body).not.toContain('eyJ');
    }
  }
  // Bob's first request made nothing for Alice's event.
  expect(
    (await svc.sql.query('select 1 from consent_receipts where account_id = $1', [alice.accountId])).rowCount,
  ).toBe(1);
});
