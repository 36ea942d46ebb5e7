import { promises as dns, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Keeps webhooks from being turned into a request forger (SSRF): a receiver must be http(s), carry no credentials, and,
 * outside development, resolve only to public addresses. Checked at registration and again at every connection (the
 * address connected to is the one checked: see `guardedLookup`), so that a name re-pointed after registration (DNS
 * rebinding) is refused too.
 */
export interface UrlPolicy {
  /** Development: any address. */
  readonly allowPrivate: boolean;
  /** Host names allowed whatever they resolve to (lower case). */
  readonly allowedHosts: ReadonlySet<string>;
  /** Addresses and networks allowed although not public. */
  readonly allowedNets: BlockList;
}

/** The allow list: comma-separated host names, addresses or CIDR networks (`WEBHOOK_ALLOWED_HOSTS`). */
export function urlPolicy(allowPrivate: boolean, allowList: readonly string[]): UrlPolicy {
  const allowedHosts = new Set<string>();
  const allowedNets = new BlockList();
  for (const entry of allowList) {
    const [address, bits] = entry.split('/');
    const family = isIP(address ?? '');
    if (!family) allowedHosts.add(entry.toLowerCase());
    else if (bits === undefined) allowedNets.addAddress(address!, family === 4 ? 'ipv4' : 'ipv6');
    else allowedNets.addSubnet(address!, Number(bits), family === 4 ? 'ipv4' : 'ipv6');
  }
  return { allowPrivate, allowedHosts, allowedNets };
}

/** Not public: unspecified, loopback, private (RFC 1918, fc00::/7), link-local, CGNAT, multicast, reserved. */
const NOT_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv6');
}

/** `::ffff:a.b.c.d` (or `::ffff:xxxx:yyyy`) → `a.b.c.d`; anything else unchanged. */
export function unmapIpv4(address: string): string {
  const groups = expandIpv6(address);
  if (!groups || groups.slice(0, 5).some((g) => g !== 0) || groups[5] !== 0xffff) return address;
  const [hi, lo] = [groups[6]!, groups[7]!];
  return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
}

function expandIpv6(address: string): number[] | undefined {
  if (isIP(address) !== 6) return undefined;
  let text = address.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (dotted) {
    const b = dotted.split('.').map(Number);
    const hex = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
    text = `${text.slice(0, -dotted.length)}${hex(b[0]!, b[1]!)}:${hex(b[2]!, b[3]!)}`;
  }
  const [head, tail] = text.split('::');
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const h = part(head);
  const t = part(tail);
  return tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
}

/** Whether a receiver may be at `address` under the policy. */
export function addressAllowed(address: string, policy: UrlPolicy): boolean {
  if (policy.allowPrivate) return true;
  const plain = unmapIpv4(address);
  const type = isIP(plain) === 4 ? 'ipv4' : 'ipv6';
  if (policy.allowedNets.check(plain, type)) return true;
  return !NOT_PUBLIC.check(plain, type);
}

export class UrlRefused extends Error {}

export type Resolver = (host: string) => Promise<LookupAddress[]>;
const systemResolver: Resolver = (host) => dns.lookup(host, { all: true, verbatim: true });

/** The URL's host without IPv6 brackets. */
const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1');

/** Checks the form of a receiver URL: http(s), no credentials. Throws UrlRefused. */
export function checkUrlForm(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UrlRefused('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UrlRefused('must be http or https');
  if (url.username || url.password) throw new UrlRefused('must not carry credentials');
  return url;
}

/** Every address `host` resolves to, if all are allowed. Throws UrlRefused otherwise, or when it does not resolve. */
export async function resolveAllowed(host: string, policy: UrlPolicy, resolve = systemResolver) {
  let addresses: LookupAddress[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await resolve(host);
    } catch {
      throw new UrlRefused('host does not resolve');
    }
  }
  if (!addresses.length) throw new UrlRefused('host does not resolve');
  if (policy.allowPrivate || policy.allowedHosts.has(host.toLowerCase())) return addresses;
  if (!addresses.every((a) => addressAllowed(a.address, policy))) {
    throw new UrlRefused('resolves to a loopback, private or link-local address');
  }
  return addresses;
}

/** Registration: the form, then the addresses. */
export async function checkReceiverUrl(raw: string, policy: UrlPolicy, resolve = systemResolver): Promise<URL> {
  const url = checkUrlForm(raw);
  await resolveAllowed(hostOf(url), policy, resolve);
  return url;
}

type LookupCallback = (err: Error | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http.request: resolves, checks every address, and hands the checked ones to the connection, so that
 * no second resolution can slip another address in. (Node does not call `lookup` for an IP literal: the delivery
 * checks a literal itself before connecting.)
 */
export function guardedLookup(policy: UrlPolicy, resolve = systemResolver) {
  return (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    resolveAllowed(hostname, policy, resolve).then(
      (addresses) => {
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: Error) => callback(err, ''),
    );
  };
}

export { hostOf };
