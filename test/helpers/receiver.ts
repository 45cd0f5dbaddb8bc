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
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const d = { path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), receivedAt: Date.now() };
      deliveries.push(d);
      receiver.respond(d, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  Object.assign(receiver, { port, url: `http://127.0.0.1:${port}` });
  defer(t, () => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  }));
  return receiver;
}
