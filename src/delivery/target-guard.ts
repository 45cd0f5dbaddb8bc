// SSRF protection: webhook URLs come from users, so a delivery must never reach this service's
// own network (loopback, private ranges, link-local cloud metadata, ...) unless the operator's
// allow-list names it. Checks happen on the address actually connected to: the undici connector
// calls `lookup` below, so a DNS answer that changes between check and connect (rebinding) changes
// nothing.
import dns from 'node:dns';
import net from 'node:net';
import { BlueWebhooksError } from '../shared/index.js';

// Every range of the IANA IPv4 and IPv6 special-purpose address registries that is not globally
// reachable, multicast, and the cloud metadata addresses outside them (README.md#security).
const BLOCKED_V4: [string, number][] = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT (Alibaba Cloud's metadata 100.100.100.200 included)
  ['127.0.0.0', 8],
  ['168.63.129.16', 32], // Azure's wire server (metadata, health probes, DNS)
  ['169.254.0.0', 16], // link-local, cloud metadata 169.254.169.254
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24],
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
];
const BLOCKED_V6: [string, number][] = [
  // Reserved by the IETF: unspecified, loopback, IPv4-compatible, IPv4-mapped (a real webhook URL
  // uses the IPv4 form) and IPv4-translated (RFC 2765) addresses among them.
  ['::', 8],
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['100:0:0:1::', 64], // dummy prefix (RFC 9780)
  // IETF protocol assignments: Teredo (hides an IPv4 address), benchmarking 2001:2::/48, ORCHID.
  ['2001::', 23],
  ['2001:db8::', 32], // documentation
  ['3fff::', 20], // documentation (RFC 9637)
  ['5f00::', 16], // segment routing (SRv6) SIDs
  ['fc00::', 7], // unique local (AWS's metadata fd00:ec2::254 included)
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
// The NAT64 well-known prefix sits inside ::/8 but is globally reachable: the IPv4 address it
// carries decides.
const NAT64 = blockList([['64:ff9b::', 96]], 'ipv6');

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
    const bare = addr.split('%')[0]!;
    return !NAT64.check(bare, 'ipv6') && BLOCKED6.check(bare, 'ipv6');
  }
  return true; // not an address at all: refuse rather than guess
}

export class TargetRefusedError extends BlueWebhooksError {
  constructor(message: string) {
    super('TARGET_REFUSED', message);
  }
}

/** How host names are resolved: dns.lookup, always asked for every address. */
export type Resolve = (
  hostname: string,
  options: dns.LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void,
) => void;

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/**
 * Decides which delivery targets may be reached; see DELIVERY_ALLOWLIST. Address rules are kept
 * per family and an address is matched in its own family only: node's BlockList matches an IPv4
 * address against IPv6 rules too, so `::/0` or `::ffff:0:0/96` in one list would let every IPv4
 * address through, 169.254.169.254 included. Host patterns match names, never IP literals
 * (`*.0.0.1` is not a way to reach 127.0.0.1).
 */
export class TargetGuard {
  private readonly allowed4 = new net.BlockList();
  private readonly allowed6 = new net.BlockList();
  /** Rules that let every address of a family through (0.0.0.0/0, ::/0), for a warning at start. */
  readonly allowsEverything: string[] = [];
  private readonly allowedHosts = new Set<string>();
  private readonly allowedSuffixes: string[] = [];
  // Decisions on IP-literal hosts never change; remember them (bounded) off the hot path.
  private readonly literalDecisions = new Map<string, boolean>();

  private readonly resolve: Resolve;
  private readonly cacheTtlMs: number;
  /** Answers by host name, kept `cacheTtlMs`; every use checks them again. */
  private readonly answers = new Map<string, { list: dns.LookupAddress[]; expiresAtMs: number }>();
  /** Look-ups under way, so that connections opened together ask once. */
  private readonly asking = new Map<
    string,
    ((err: NodeJS.ErrnoException | null, list: dns.LookupAddress[]) => void)[]
  >();
  /** Host names resolved, cached or not: what the cache saves is `lookups - resolved`. */
  resolved = 0;

  /**
   * @param allowlist CIDRs ("10.0.0.0/8", "::1/128"), addresses, host names, or "*.example.com".
   * @param options.resolve dns.lookup by default; a test's own resolver otherwise.
   * @param options.cacheTtlMs how long an answer is used again (DNS_CACHE_TTL_MS); 0 asks every time.
   */
  constructor(allowlist: readonly string[] = [], options: { resolve?: Resolve; cacheTtlMs?: number } = {}) {
    this.resolve = options.resolve ?? dns.lookup;
    this.cacheTtlMs = options.cacheTtlMs ?? 0;
    for (const entry of allowlist) {
      const [addr, bits] = entry.replace(/^\[|\](?=\/|$)/g, '').split('/');
      const family = net.isIP(addr!);
      if (family) {
        const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
        if (family === 4) this.allowed4.addSubnet(addr!, prefix, 'ipv4');
        else this.allowed6.addSubnet(addr!, prefix, 'ipv6');
        if (prefix === 0) this.allowsEverything.push(entry);
      } else if (addr!.startsWith('*.')) {
        this.allowedSuffixes.push(addr!.slice(1).toLowerCase());
      } else {
        this.allowedHosts.add(addr!.toLowerCase());
      }
    }
  }

  /** Whether a host name (never an IP literal) is named by the allow-list. */
  isAllowedHost(hostname: string): boolean {
    const h = hostname.toLowerCase().replace(/\.$/, '');
    if (net.isIP(h.replace(/^\[|\]$/g, ''))) return false;
    return this.allowedHosts.has(h) || this.allowedSuffixes.some((s) => h.endsWith(s));
  }

  isAllowedAddress(addr: string): boolean {
    if (!isInternalAddress(addr)) return true;
    const family = net.isIP(addr);
    if (family === 4) return this.allowed4.check(addr, 'ipv4');
    if (family !== 6) return false;
    const v4 = embeddedIPv4(addr);
    if (v4 !== null && this.allowed4.check(v4, 'ipv4')) return true;
    return this.allowed6.check(addr.split('%')[0]!, 'ipv6');
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
      allowed = !net.isIP(host) || this.isAllowedAddress(host);
      if (this.literalDecisions.size >= 10_000) this.literalDecisions.clear();
      this.literalDecisions.set(url.hostname, allowed);
    }
    if (!allowed) {
      throw new TargetRefusedError(`address ${url.hostname} is internal and not in DELIVERY_ALLOWLIST`);
    }
  }

  /**
   * A dns.lookup replacement for the HTTP connector that refuses internal answers. An answer is
   * used again for `cacheTtlMs` (getaddrinfo, which reads /etc/hosts as the system does, says
   * nothing of a record's TTL, so the cache keeps it a fixed, short time); the checks below run on
   * every use, so a cached answer is judged as a fresh one would be.
   */
  readonly lookup = (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    this.answersFor(hostname, options.family, (err, list) => {
      if (err) return callback(err, []);
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

  private answersFor(
    hostname: string,
    family: dns.LookupOptions['family'],
    done: (err: NodeJS.ErrnoException | null, list: dns.LookupAddress[]) => void,
  ): void {
    const key = `${family ?? 0} ${hostname}`;
    const cached = this.answers.get(key);
    if (cached && cached.expiresAtMs > Date.now()) {
      done(null, cached.list);
      return;
    }
    const waiting = this.asking.get(key);
    if (waiting) {
      waiting.push(done);
      return;
    }
    this.asking.set(key, [done]);
    this.resolved++;
    this.resolve(hostname, { family: family as number | undefined, all: true }, (err, list) => {
      const callers = this.asking.get(key) ?? [];
      this.asking.delete(key);
      if (!err && this.cacheTtlMs > 0) {
        if (this.answers.size >= 10_000) this.answers.clear();
        this.answers.set(key, { list, expiresAtMs: Date.now() + this.cacheTtlMs });
      }
      for (const caller of callers) caller(err, list);
    });
  }
}
