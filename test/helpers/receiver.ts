import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { defer } from './defer.js';

export interface ReceivedDelivery {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  receivedAt: number;
}

/** Decides the response; default 200. */
export type Responder = (d: ReceivedDelivery, res: http.ServerResponse) => void;

export interface Receiver {
  readonly url: string;
  readonly port: number;
  readonly deliveries: ReceivedDelivery[];
  respond: Responder;
  /** Deliveries whose path is `path`. */
  at(path: string): ReceivedDelivery[];
  /** Distinct (path, delivery id) pairs received, as `path|id`: repeats of a delivery count once. */
  pairs(): Set<string>;
}

/** An HTTP server on a loopback address, port 0, closed (connections too) when the test ends. */
export async function serve(
  t: TestContext,
  handler: http.RequestListener,
  host = '127.0.0.1',
): Promise<{ port: number; url: string }> {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, host, r));
  defer(
    t,
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://${host}:${port}` };
}

/** A real HTTP endpoint on 127.0.0.1, port 0, recording every request; closed when the test ends. */
export async function startReceiver(t: TestContext, respond?: Responder): Promise<Receiver> {
  const deliveries: ReceivedDelivery[] = [];
  const receiver: Receiver = {
    url: '',
    port: 0,
    deliveries,
    respond: respond ?? ((_d, res) => res.writeHead(200).end('ok')),
    at: (path) => deliveries.filter((d) => d.path === path),
    pairs: () => new Set(deliveries.map((d) => `${d.path}|${d.headers['x-blue-delivery']}`)),
  };
  const { port, url } = await serve(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const d = {
        path: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        receivedAt: Date.now(),
      };
      deliveries.push(d);
      receiver.respond(d, res);
    });
  });
  Object.assign(receiver, { port, url });
  return receiver;
}
