import { receiptPayloadSchema } from '../../src/consent';
import { type ReceiptAct, receiptPayload } from '../../src/consent/receipt';
import { loadConfig } from '../../src/platform/config';

/**
 * The receipt's payload is a pure function of the act, the catalog and the settings: the same act gives the same bytes
 * (so a receipt made twice, or concurrently, says the same), and every payload parses with the one schema.
 */

const config = loadConfig({});
const settings = {
  brand: config.brand,
  portalUrl: 'https://privacy.example-isp.net',
};

const act = (o: Partial<ReceiptAct> = {}): ReceiptAct => ({
  receiptId: '6f1c0a52-8a38-4c43-9a57-3f0e8f1d2c11',
  accountId: 'A-1001',
  recordedAt: new Date('2026-12-02T12:00:00.123Z'),
  language: 'en',
  channel: 'portal',
  actor: { type: 'subscriber' },
  notice: { version: 'v3', sha256: 'a'.repeat(64) },
  events: [
    {
      eventId: '0b7d2f5e-8c1a-4c4e-9a57-3f0e8f1d2c11',
      purpose: 'data_sale',
      category: 'health',
      kind: 'granted',
      expiresAt: new Date('2027-12-02T12:00:00.123Z'),
      recipients: ['databroker-one'],
    },
    {
      eventId: '1b7d2f5e-8c1a-4c4e-9a57-3f0e8f1d2c11',
      purpose: 'product_analytics',
      category: 'other_customer_info',
      kind: 'opted_out',
    },
  ],
  ...o,
});

it('the same act gives the same bytes, with the standard fields in a fixed order', () => {
  const a = JSON.stringify(receiptPayload(act(), config.catalog, settings));
  const b = JSON.stringify(receiptPayload(act(), config.catalog, settings));
  expect(a).toBe(b);
  const payload = receiptPayloadSchema.parse(JSON.parse(a));
  expect(Object.keys(payload).slice(0, 9)).toEqual([
    'version',
    'jurisdiction',
    'consentTimestamp',
    'recordedAt',
    'collectionMethod',
    'consentReceiptID',
    'language',
    'piiPrincipalId',
    'piiControllers',
  ]);
  expect(payload).toMatchObject({
    version: 'KI-CR-v1.1.0',
    jurisdiction: 'US-ME',
    consentTimestamp: 1796212800,
    policyUrl: config.brand.policyUrl,
    notice: { url: 'https://privacy.example-isp.net/notice/v3' },
    sensitive: true,
    spiCat: ['Health information'],
    services: [
      {
        service: config.brand.name,
        purposes: [
          {
            purposeId: 'data_sale',
            purposeCategory: ['sale'],
            consentType: 'EXPLICIT',
            piiCategory: ['Health information'],
            thirdPartyDisclosure: true,
            thirdPartyName: ['Data Broker One, Inc.'],
          },
          { purposeId: 'product_analytics', purposeCategory: ['analytics'], thirdPartyName: [] },
        ],
      },
    ],
    changes: [
      { change: 'granted', sensitive: true, expiresAt: '2027-12-02T12:00:00.123Z' },
      { change: 'opted_out', sensitive: false },
    ],
  });
});

it('says what is true of the Global Privacy Control signal and of the system', () => {
  const gpc = receiptPayload(act({ actor: { type: 'subscriber', id: 'gpc' } }), config.catalog, settings);
  expect(gpc).toMatchObject({ collectionMethod: 'gpc_signal', actor: { type: 'gpc' } });
  expect(gpc.services[0]!.purposes.map((p) => p.consentType)).toEqual(['BROWSER_SIGNAL', 'BROWSER_SIGNAL']);
  const system = receiptPayload(act({ channel: 'system', actor: { type: 'system' } }), config.catalog, settings);
  expect(system).toMatchObject({ collectionMethod: 'system', actor: { type: 'system' } });
  expect(system.services[0]!.purposes.map((p) => p.consentType)).toEqual(['NONE', 'NONE']);
  const staff = receiptPayload(
    act({
      channel: 'call_center',
      actor: { type: 'staff', id: 'agent-7' },
      verification: 'callback',
      reference: 'T-1',
    }),
    config.catalog,
    settings,
  );
  expect(staff.actor).toEqual({ type: 'staff', verification: 'callback', reference: 'T-1' });
});
