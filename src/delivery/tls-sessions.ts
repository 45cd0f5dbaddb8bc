import type { EventEmitter } from 'node:events';

/**
 * TLS sessions kept for resumption, one store for every origin.
 *
 * Why not undici's own cache: each of its Pools (one per origin) builds a connector with a cache of
 * its own, weakly held, and the Agent drops an origin's Pool when its last connection closes. An
 * origin that sees a delivery every few seconds, behind a server closing idle connections after
 * 5, so had a new Pool, an empty cache and a full handshake every time: no
 * session was ever resumed. This store outlives pools and connections, holds its sessions
 * strongly, drops the least recently used past its size, and forgets a session when the ticket
 * the server gave says it has expired.
 *
 * A session is offered only under the key it was received with: its origin and the address the
 * connection went to, so it never reaches another origin, nor another server of one origin.
 */
export class TlsSessionStore {
  private readonly sessions = new Map<string, { session: Buffer; expiresAtMs: number }>();
  /** Handshakes under way for keys with no session: what a connection to the same key waits for. */
  private readonly leaders = new Map<string, Promise<void>>();

  constructor(
    /** Most sessions kept; 0 keeps none. */
    private readonly maxSessions: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Claims the first handshake for `key`, which has no session, when nobody has: connections to
   * the same key then wait (`leader`) until it brings a session, fails, or LEADER_WAIT_MS pass (a
   * server that sends no ticket). Returns what to call with its socket (`follow`), or `release`
   * when there will be none; null when another connection leads. Claimed and checked in one step,
   * so that connections opened together (a burst) see one another.
   */
  claim(key: string): { follow(socket: EventEmitter): void; release(): void } | null {
    if (this.maxSessions === 0 || this.leaders.has(key)) return null;
    let release: () => void = () => {};
    const led: Promise<void> = new Promise((resolve) => {
      release = () => {
        if (this.leaders.get(key) === led) this.leaders.delete(key);
        resolve();
      };
    });
    this.leaders.set(key, led);
    return {
      release,
      follow: (socket) => {
        const done = () => {
          clearTimeout(timer);
          socket.off('session', done).off('close', done).off('error', done);
          release();
        };
        const timer = setTimeout(done, LEADER_WAIT_MS);
        socket.once('session', done).once('close', done).once('error', done);
      },
    };
  }

  /** The handshake under way for `key`, if any: resolves once it has brought its session, or given up. */
  leader(key: string): Promise<void> | undefined {
    return this.leaders.get(key);
  }

  get(key: string): Buffer | undefined {
    const entry = this.sessions.get(key);
    if (!entry) return undefined;
    if (entry.expiresAtMs <= this.now()) {
      this.sessions.delete(key);
      return undefined;
    }
    // Most recently used last: the first entry is the one to drop.
    this.sessions.delete(key);
    this.sessions.set(key, entry);
    return entry.session;
  }

  set(key: string, session: Buffer): void {
    if (this.maxSessions === 0) return;
    const expiresAtMs = sessionExpiry(session) ?? this.now() + FALLBACK_LIFETIME_MS;
    this.sessions.delete(key);
    if (this.sessions.size >= this.maxSessions) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    this.sessions.set(key, { session, expiresAtMs: Math.min(expiresAtMs, this.now() + MAX_LIFETIME_MS) });
  }
}

/** Longest wait for another connection's handshake to bring a session: a little more than a full one takes. */
const LEADER_WAIT_MS = 250;

/** When a session's own lifetime cannot be read: OpenSSL's default session timeout. */
const FALLBACK_LIFETIME_MS = 2 * 3600 * 1000;
/** The longest a TLS 1.3 ticket may live (RFC 8446, 4.6.1). */
const MAX_LIFETIME_MS = 7 * 24 * 3600 * 1000;

/**
 * When a session expires, in epoch ms, read from the session as Node gives it (OpenSSL's DER
 * encoding of SSL_SESSION): its `time` ([1]) plus its `timeout` ([2]), both in seconds. For TLS
 * 1.3, OpenSSL sets the timeout to the lifetime the server put in its ticket. Null when absent or
 * unreadable.
 */
export function sessionExpiry(der: Buffer): number | null {
  let time: number | null = null;
  let timeout: number | null = null;
  const top = readTlv(der, 0);
  if (top?.tag !== 0x30) return null;
  for (let at = top.start; at < top.end; ) {
    const field = readTlv(der, at);
    if (!field || field.end > top.end) return null;
    if (field.tag === 0xa1 || field.tag === 0xa2) {
      const int = readTlv(der, field.start);
      if (int?.tag !== 0x02 || int.end > field.end || int.end - int.start > 6) return null;
      let value = 0;
      for (let i = int.start; i < int.end; i++) value = value * 256 + der[i]!;
      if (field.tag === 0xa1) time = value;
      else timeout = value;
    }
    at = field.end;
  }
  return time === null || timeout === null ? null : (time + timeout) * 1000;
}

/** One DER tag-length-value at `at`: its tag, and where its content starts and ends. */
function readTlv(buf: Buffer, at: number): { tag: number; start: number; end: number } | null {
  if (at + 2 > buf.length) return null;
  const tag = buf[at]!;
  let length = buf[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 3 || start + bytes > buf.length) return null;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + buf[start + i]!;
    start += bytes;
  }
  const end = start + length;
  return end > buf.length ? null : { tag, start, end };
}
