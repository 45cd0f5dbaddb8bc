import { isIP } from 'node:net';

// Small, pure parsers for environment values. Each returns a value or throws a message that
// says what was expected; the caller adds the variable's name.

export function parseIntInRange(raw: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(raw.trim())) throw new Error(`expected an integer from ${min} to ${max}, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new Error(`expected an integer from ${min} to ${max}, got ${n}`);
  return n;
}

export function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function parseBrokers(raw: string): string[] {
  const list = parseList(raw);
  if (list.length === 0) throw new Error('expected comma-separated host:port pairs, got nothing');
  for (const b of list) {
    const m = /^(\[[^\]]*\]|[^:\s]+):(\d{1,5})$/.exec(b);
    if (!m) throw new Error(`expected host:port, got "${b}"`);
    const host = m[1]!;
    if (!host.startsWith('[')) parseHost(host);
    else if (isIP(host.slice(1, -1)) !== 6) throw new Error(`expected an IPv6 address in brackets, got "${host}"`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new Error(`expected a port from 1 to 65535, got ${port} in "${b}"`);
  }
  return list;
}

// A DNS name: labels of letters, digits, '-' and '_' (the last seen in service names), '.'-separated.
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** A host to connect to or listen on: an IP literal or a DNS name, nothing else (no space, no newline). */
export function parseHost(raw: string): string {
  if (isIP(raw) === 0 && !HOST_NAME.test(raw))
    throw new Error(`expected a host name or an IP address, got ${JSON.stringify(raw)}`);
  return raw;
}

export function parseUrl(raw: string, protocols: string[]): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    // A URL may carry a password: one with user info is not echoed.
    throw new Error(`expected a URL, got ${raw.includes('@') ? 'a value with user info (not shown)' : `"${raw}"`}`);
  }
  if (!protocols.includes(u.protocol)) {
    throw new Error(`expected a URL with scheme ${protocols.join(' or ')}, got "${u.protocol}"`);
  }
  // Its users (ioredis, the registry client) decode the user info, and would throw at start.
  try {
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
  } catch {
    throw new Error('expected percent-escapes in the user name and password to be valid (%XX)');
  }
  return raw.replace(/\/+$/, '');
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "5s", "1m", "2h", "1d" → milliseconds. */
export function parseDurationMs(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(raw.trim());
  if (!m) throw new Error(`expected a duration such as 500ms, 5s, 1m, 2h or 1d, got "${raw}"`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
}

export function parseTopicName(raw: string): string {
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(raw)) {
    throw new Error(`expected a Kafka topic name (letters, digits, '.', '_', '-'), got "${raw}"`);
  }
  return raw;
}

export function parseEnum<T extends string>(raw: string, values: readonly T[]): T {
  if (!(values as readonly string[]).includes(raw))
    throw new Error(`expected one of ${values.join(', ')}, got "${raw}"`);
  return raw as T;
}
