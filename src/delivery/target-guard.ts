// SSRF protection: webhook URLs come from users, so a delivery must never reach this service's
// own network (loopback, private ranges, link-local cloud metadata, ...) unless the operator's
// allow-list names it. Checks happen on the address actually connected to: the undici connector
// calls `lookup` below, so a DNS answer that changes between check and connect (rebinding) changes
// nothing.
import dns from 'node:dns';
import net from 'node:net';
import { BlueWebhooksError } from '../shared/index.js';

const BLOCKED_V4: [string, number][] = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata 169.254.169.254
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
];
const BLOCKED_V6: [string, number][] = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['100::', 64], // discard
  ['2001::', 32], // Teredo (hides an IPv4 address)
  ['2001:db8::', 32], // documentation
  ['3fff::', 20], // documentation (RFC 9637)
  // IPv4-mapped (any IPv4 address in IPv6 form; a real webhook URL uses the IPv4 form), and
  // IPv4-translated (RFC 2765).
  ['::ffff:0:0', 96],
  ['::ffff:0:0:0', 96],
  ['64:ff9b:1::', 48], // local-use NAT64
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
];

function blockList(subnets: [string, number][], family: 'ipv4' | 'ipv6'): net.BlockList {
  const list = new net.BlockList();
  for (const [a, p] of subnets) list.addSubnet(a, p, family);
  return list;
}

// Two lists: node's BlockList matches an IPv4 address against IPv4-mapped IPv6 rules, and the
// whole mapped range is blocked for IPv6 forms only.
const BLOCKED4 = blockList(BLOCKED_V4, 'ipv4');
const BLOCKED6 = blockList(BLOCKED_V6, 'ipv6');

/** Parses an IPv6 address into 8 16-bit groups (accepts "::" and a trailing dotted quad). */
function ipv6Groups(addr: string): number[] | null {
  let s = addr.split('%')[0]!;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4tail) {
    const b = v4tail[1]!.split('.').map(Number);
    s = `${s.slice(0, -v4tail[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail, ...rest] = s.split('::');
  if (rest.length > 0) return null;
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array(Math.max(0, fill)).fill('0'), ...t].map((g) => Number.parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : null;
}

/** The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any. */
export function embeddedIPv4(addr: string): string | null {
  const g = ipv6Groups(addr);
  if (!g) return null;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && g[5] === 0xffff) return v4(g[6]!, g[7]!); // ::ffff:a.b.c.d (mapped)
  if (zero(0, 6) && (g[6] !== 0 || g[7]! > 1)) return v4(g[6]!, g[7]!); // ::a.b.c.d (compatible)
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return v4(g[6]!, g[7]!); // 64:ff9b::/96 NAT64
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!); // 6to4
  return null;
}

/** True for addresses a webhook may not reach: loopback, private, link-local, multicast, ... */
export function isInternalAddress(addr: string): boolean {
  const family = net.isIP(addr);
  if (family === 4) return BLOCKED4.check(addr, 'ipv4');
  if (family === 6) {
    const v4 = embeddedIPv4(addr);
    if (v4 !== null && BLOCKED4.check(v4, 'ipv4')) return true;
    return BLOCKED6.check(addr.split('%')[0]!, 'ipv6');
  }
  return true; // not an address at all: refuse rather than guess
}

export class TargetRefusedError extends BlueWebhooksError {
  constructor(message: string) {
    super('TARGET_REFUSED', message);
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/** Decides which delivery targets may be reached; see DELIVERY_ALLOWLIST. */
export class TargetGuard {
  private readonly allowedNets = new net.BlockList();
  private readonly allowedHosts = new Set<string>();
  private readonly allowedSuffixes: string[] = [];
  // Decisions on IP-literal hosts never change; remember them (bounded) off the hot path.
  private readonly literalDecisions = new Map<string, boolean>();

  /** @param allowlist CIDRs ("10.0.0.0/8", "::1/128"), addresses, host names, or "*.example.com". */
  constructor(allowlist: readonly string[] = []) {
    for (const entry of allowlist) {
      const [addr, bits] = entry.replace(/^\[|\](?=\/|$)/g, '').split('/');
      const family = net.isIP(addr!);
      if (family) {
        const type = family === 4 ? 'ipv4' : 'ipv6';
        this.allowedNets.addSubnet(addr!, bits === undefined ? (family === 4 ? 32 : 128) : Number(bits), type);
      } else if (addr!.startsWith('*.')) {
        this.allowedSuffixes.push(addr!.slice(1).toLowerCase());
      } else {
        this.allowedHosts.add(addr!.toLowerCase());
      }
    }
  }

  isAllowedHost(hostname: string): boolean {
    const h = hostname.toLowerCase().replace(/\.$/, '');
    return this.allowedHosts.has(h) || this.allowedSuffixes.some((s) => h.endsWith(s));
  }

  isAllowedAddress(addr: string): boolean {
    if (!isInternalAddress(addr)) return true;
    const family = net.isIP(addr);
    if (family === 6) {
      const v4 = embeddedIPv4(addr);
      if (v4 !== null && this.allowedNets.check(v4, 'ipv4')) return true;
    }
    return family !== 0 && this.allowedNets.check(addr.split('%')[0]!, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * Checks what can be checked before connecting: the scheme, and the address when the host is an
   * IP literal (the connector does not look those up). Throws TargetRefusedError.
   */
  checkUrl(url: URL): void {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TargetRefusedError(`scheme ${url.protocol} is not allowed (http and https only)`);
    }
    let allowed = this.literalDecisions.get(url.hostname);
    if (allowed === undefined) {
      const host = url.hostname.replace(/^\[|\]$/g, '');
      allowed = !net.isIP(host) || this.isAllowedAddress(host) || this.isAllowedHost(host);
      if (this.literalDecisions.size >= 10_000) this.literalDecisions.clear();
      this.literalDecisions.set(url.hostname, allowed);
    }
    if (!allowed) {
      throw new TargetRefusedError(`address ${url.hostname} is internal and not in DELIVERY_ALLOWLIST`);
    }
  }

  /** A dns.lookup replacement for the HTTP connector that refuses internal answers. */
  readonly lookup = (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as dns.LookupAddress[];
      if (list.length === 0)
        return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
      if (!this.isAllowedHost(hostname)) {
        // Refuse when any answer is internal: picking the "good" one invites games with DNS.
        const bad = list.find((a) => !this.isAllowedAddress(a.address));
        if (bad) {
          return callback(
            new TargetRefusedError(
              `${hostname} resolves to internal address ${bad.address}, not in DELIVERY_ALLOWLIST`,
            ),
            [],
          );
        }
      }
      if (options.all) callback(null, list);
      else callback(null, list[0]!.address, list[0]!.family);
    });
  };
}
