import { send } from '../../src/webhooks/sender';
import { addressAllowed, guardedLookup, resolveAllowed, unmapIpv4, urlPolicy } from '../../src/webhooks/url-guard';
import { Receiver } from './receiver';

/** The SSRF guard's address rules, as a table: address → may a receiver be there (allow list off, not development). */
const CASES: [string, boolean][] = [
  ['93.184.216.34', true],
  ['8.8.8.8', true],
  ['2606:4700:4700::1111', true],
  ['127.0.0.1', false],
  ['127.255.0.9', false],
  ['10.1.2.3', false],
  ['172.16.0.1', false],
  ['172.31.255.255', false],
  ['172.32.0.1', true],
  ['192.168.1.1', false],
  ['169.254.169.254', false],
  ['100.64.0.1', false],
  ['100.127.255.255', false],
  ['0.0.0.0', false],
  ['224.0.0.1', false],
  ['::', false],
  ['::1', false],
  ['fc00::1', false],
  ['fd12:3456::1', false],
  ['fe80::1', false],
  ['::ffff:127.0.0.1', false],
  ['::ffff:7f00:1', false],
  ['::ffff:a9fe:a9fe', false],
  ['::ffff:8.8.8.8', true],
];

const strict = urlPolicy(false, []);

it.each(CASES)('%s allowed: %s', (address, allowed) => {
  expect(addressAllowed(address, strict)).toBe(allowed);
});

it('reads IPv4-mapped IPv6 addresses in both spellings', () => {
  expect(unmapIpv4('::ffff:7f00:1')).toBe('127.0.0.1');
  expect(unmapIpv4('::ffff:10.0.0.1')).toBe('10.0.0.1');
  expect(unmapIpv4('2001:db8::1')).toBe('2001:db8::1');
});

it('allows what the allow list names (addresses, networks, host names) and anything in development', async () => {
  const listed = urlPolicy(false, ['127.0.0.1', '10.0.0.0/8', 'hooks.internal']);
  expect(addressAllowed('127.0.0.1', listed)).toBe(true);
  expect(addressAllowed('10.9.8.7', listed)).toBe(true);
  expect(addressAllowed('192.168.0.1', listed)).toBe(false);
  const resolver = async () => [{ address: '192.168.5.5', family: 4 }];
  await expect(resolveAllowed('hooks.internal', listed, resolver)).resolves.toHaveLength(1);
  await expect(resolveAllowed('other.internal', listed, resolver)).rejects.toThrow(/private/);
  expect(addressAllowed('192.168.0.1', urlPolicy(true, []))).toBe(true);
});

it('refuses a name when any of its addresses is private, and hands the connection only checked addresses', async () => {
  // DNS rebinding: a name that resolved to a public address at registration now resolves to a private one.
  const rebound = async () => [
    { address: '93.184.216.34', family: 4 },
    { address: '169.254.169.254', family: 4 },
  ];
  const lookup = guardedLookup(strict, rebound);
  const refused = await new Promise<Error | null>((resolve) => lookup('rebind.example', {}, (err) => resolve(err)));
  expect(refused?.message).toMatch(/private|link-local/);

  const lookupPublic = guardedLookup(strict, async () => [{ address: '93.184.216.34', family: 4 }]);
  const connected = await new Promise<unknown>((resolve) =>
    lookupPublic('public.example', { all: true }, (_err, addresses) => resolve(addresses)),
  );
  expect(connected).toEqual([{ address: '93.184.216.34', family: 4 }]);
});

it('refuses to send to a refused address at delivery time, literal or resolved, without connecting', async () => {
  const receiver = await new Receiver().start();
  try {
    const req = { secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}`, id: 'd-1', body: '{}', now: new Date() };
    for (const url of [receiver.url, receiver.url.replace('127.0.0.1', 'localhost')]) {
      const r = await send({ ...req, url }, strict, 2000);
      expect(r).toEqual({ ok: false, status: null, error: expect.stringMatching(/^refused: /) });
    }
    expect(receiver.received).toHaveLength(0);
    // The same receiver, allowed: delivered, by address and by a listed name (connected through the guarded lookup).
    expect(await send({ ...req, url: receiver.url }, urlPolicy(false, ['127.0.0.1']), 2000)).toEqual({
      ok: true,
      status: 200,
    });
    const byName = receiver.url.replace('127.0.0.1', 'localhost');
    expect(await send({ ...req, url: byName }, urlPolicy(false, ['localhost']), 2000)).toEqual({
      ok: true,
      status: 200,
    });
    expect(receiver.received).toHaveLength(2);
  } finally {
    await receiver.stop();
  }
});
