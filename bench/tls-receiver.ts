// The HTTPS (or plain HTTP) grid of `npm run bench -- --tls`, its own process: BENCH_IPS loopback
// addresses × BENCH_PORTS_PER_IP ports, each answering 204 and closing connections idle for
// BENCH_KEEPALIVE_MS. Counts requests, TLS handshakes (full and resumed), and connections open
// now and at most. With BENCH_CERT_DIR, HTTPS with the key and certificate found there.
// Driven over IPC: {cmd: 'stats' | 'reset'}.
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';

const IPS = Number(process.env.BENCH_IPS ?? 1);
const PORTS_PER_IP = Number(process.env.BENCH_PORTS_PER_IP ?? 1);
const KEEPALIVE_MS = Number(process.env.BENCH_KEEPALIVE_MS ?? 5000);
const CERT_DIR = process.env.BENCH_CERT_DIR;
/** Offer HTTP/2 too (ALPN), closing sessions idle for BENCH_KEEPALIVE_MS. */
const H2 = process.env.BENCH_H2 === '1';

let requests = 0;
let full = 0;
let resumed = 0;
let open = 0;
let peakOpen = 0;
/** Connections that chose HTTP/2. */
let h2Sessions = 0;

const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
  req.resume();
  req.on('end', () => {
    requests++;
    res.statusCode = 204;
    res.end();
  });
};
const tlsOptions = CERT_DIR
  ? { key: fs.readFileSync(path.join(CERT_DIR, 'key.pem')), cert: fs.readFileSync(path.join(CERT_DIR, 'cert.pem')) }
  : null;

const origins: string[] = [];
for (let i = 1; i <= IPS; i++) {
  for (let p = 0; p < PORTS_PER_IP; p++) {
    const server =
      tlsOptions && H2
        ? http2.createSecureServer({ ...tlsOptions, allowHTTP1: true }, onRequest as never).setTimeout(KEEPALIVE_MS)
        : tlsOptions
          ? https.createServer(tlsOptions, onRequest)
          : http.createServer(onRequest);
    if ('keepAliveTimeout' in server) server.keepAliveTimeout = KEEPALIVE_MS;
    else server.on('session', () => h2Sessions++);
    server.on('connection', (socket: Socket) => {
      open++;
      peakOpen = Math.max(peakOpen, open);
      socket.once('close', () => open--);
    });
    if (tlsOptions) {
      server.on('secureConnection', (socket: TLSSocket) => {
        if (socket.isSessionReused()) resumed++;
        else full++;
      });
    }
    await new Promise<void>((resolve) => server.listen(0, `127.0.0.${i}`, resolve));
    origins.push(`${tlsOptions ? 'https' : 'http'}://127.0.0.${i}:${(server.address() as AddressInfo).port}`);
  }
}

process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'reset') {
    requests = full = resumed = h2Sessions = 0;
    peakOpen = open;
    process.send!({ cmd: 'reset' });
  } else if (m.cmd === 'stats') {
    process.send!({ cmd: 'stats', requests, full, resumed, open, peakOpen, h2Sessions });
  }
});
process.send!({ cmd: 'ready', origins });
