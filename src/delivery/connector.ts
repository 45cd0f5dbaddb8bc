import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import net from 'node:net';
import tls from 'node:tls';
import { type buildConnector, errors } from 'undici';
import type { TlsSessionStore } from './tls-sessions.js';

export interface ConnectorOptions {
  timeoutMs: number;
  /** Resolves host names; the target guard's, which refuses internal addresses. */
  lookup: LookupFunction;
  sessions: TlsSessionStore;
  /** ALPN protocols offered, in order of preference. */
  alpn: readonly string[];
  /** Trust for outgoing TLS; the default context (the system's CAs and NODE_EXTRA_CA_CERTS) when absent. */
  secureContext?: tls.SecureContext;
  /** Told of every socket opened (IdleConnections keeps count), and of every TLS handshake. */
  onSocket?(origin: string, socket: net.Socket): void;
  onHandshake?(resumed: boolean): void;
}

/**
 * The connector every Pool of the Agent shares (undici's `connect` option as a function), so that
 * what it holds outlives any one origin's pool: one `secureContext` for every TLS connection
 * (`tls.connect` otherwise builds an OpenSSL context for each connection), and one TLS session
 * store (see TlsSessionStore for why undici's own does not resume). Otherwise it does what undici's
 * own connector does for plain and TLS sockets: keep-alive, no Nagle, a connect deadline.
 *
 * For TLS, the host is resolved through the guard first, which refuses internal addresses as for
 * any connection; Node then connects to the addresses it answered, in order. The session offered
 * is the one kept for the origin and the first of those addresses. When there is none but a
 * handshake with that origin and address is under way (a burst opening several connections at
 * once), the new connection waits for the session it brings and resumes it, for about half the
 * CPU of a full handshake.
 */
export function createConnector(options: ConnectorOptions): buildConnector.connector {
  const { sessions } = options;
  const secureContext = options.secureContext ?? tls.createSecureContext();

  const openTls = async (origin: string, address: string, port: number): Promise<net.Socket> => {
    const literal = net.isIP(address) !== 0;
    const answers = literal ? [{ address, family: net.isIP(address) }] : await resolve(options.lookup, address);
    const key = `${origin} ${answers[0]!.address}`;
    let session = sessions.get(key);
    const leading = session ? null : sessions.claim(key);
    if (!session && !leading) {
      await sessions.leader(key);
      session = sessions.get(key);
    }
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({
        host: address,
        port,
        servername: literal ? undefined : address,
        secureContext,
        session,
        ALPNProtocols: [...options.alpn],
        // The guard's answers, already checked.
        lookup: ((_name, lookupOptions, done: (...args: unknown[]) => void) => {
          if (lookupOptions.all) done(null, answers);
          else done(null, answers[0]!.address, answers[0]!.family);
        }) as LookupFunction,
      });
    } catch (err) {
      leading?.release();
      throw err;
    }
    // TLS 1.3 sends its tickets after the handshake, often two: the last one is kept. Stored
    // before those waiting for this handshake hear of it.
    socket.on('session', (received: Buffer) => {
      if (socket.remoteAddress) sessions.set(`${origin} ${socket.remoteAddress}`, received);
    });
    leading?.follow(socket);
    socket.once('secureConnect', () => options.onHandshake?.(socket.isSessionReused()));
    return socket;
  };

  return ({ hostname, host, protocol, port }, callback) => {
    const origin = `${protocol}//${host}`;
    const address = hostname.replace(/^\[|\]$/g, '');
    let socket: net.Socket | null = null;
    let settled = false;
    const settle = (err: Error | null, connected: net.Socket | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) callback(err, null);
      else callback(null, connected!);
    };
    const timer = setTimeout(() => {
      const err = new errors.ConnectTimeoutError(
        `Connect Timeout Error (attempted address: ${hostname}:${port}, timeout: ${options.timeoutMs}ms)`,
      );
      if (socket) socket.destroy(err);
      else settle(err, null);
    }, options.timeoutMs);

    const opened =
      protocol === 'https:'
        ? openTls(origin, address, Number(port) || 443)
        : Promise.resolve(
            net.connect({
              host: address,
              port: Number(port) || 80,
              ...(net.isIP(address) ? {} : { lookup: options.lookup }),
            }),
          );
    opened.then(
      (s) => {
        socket = s;
        if (settled) {
          s.destroy();
          return;
        }
        s.setKeepAlive(true, 60_000).setNoDelay(true);
        options.onSocket?.(origin, s);
        s.once(protocol === 'https:' ? 'secureConnect' : 'connect', () => settle(null, s)).on('error', (err) =>
          settle(err, null),
        );
      },
      (err: Error) => settle(err, null),
    );
  };
}

/** Every address `hostname` has, through `lookup` (the guard's, which refuses internal ones). */
function resolve(lookup: LookupFunction, hostname: string): Promise<LookupAddress[]> {
  return new Promise((ok, fail) =>
    lookup(hostname, { all: true }, (err, answers) => {
      if (err) fail(err);
      else ok(answers as unknown as LookupAddress[]);
    }),
  );
}
