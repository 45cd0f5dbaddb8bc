// HTTPS endpoints on loopback for tests and benchmarks: a certificate authority made per run
// (openssl), and a grid of servers on 127.0.0.1..N × ports, each counting TLS handshakes and how
// many of them resumed a session.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';

export interface Certificates {
  /** The authority's certificate (PEM), what clients trust. */
  ca: string;
  key: string;
  cert: string;
}

/** A new authority, and a server certificate it signs for these IPs and host names. */
export function makeCertificates(ips: readonly string[], names: readonly string[] = []): Certificates {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bw-ca-'));
  const at = (f: string) => path.join(dir, f);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    openssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      at('ca.key'),
      '-out',
      at('ca.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=bw test CA',
    );
    openssl('req', '-new', ...ec, '-keyout', at('leaf.key'), '-out', at('leaf.csr'), '-subj', '/CN=bw test endpoint');
    const san = [...ips.map((ip) => `IP:${ip}`), ...names.map((n) => `DNS:${n}`)].join(',');
    fs.writeFileSync(at('ext.cnf'), `subjectAltName=${san}\n`);
    openssl(
      'x509',
      '-req',
      '-in',
      at('leaf.csr'),
      '-CA',
      at('ca.pem'),
      '-CAkey',
      at('ca.key'),
      '-CAcreateserial',
      '-out',
      at('leaf.pem'),
      '-days',
      '2',
      '-extfile',
      at('ext.cnf'),
    );
    const read = (f: string) => fs.readFileSync(at(f), 'utf8');
    return { ca: read('ca.pem'), key: read('leaf.key'), cert: read('leaf.pem') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface Grid {
  /** Every origin, as `https://127.0.0.k:port`. */
  origins: string[];
  /** TLS handshakes completed, and how many resumed a session. */
  handshakes(): { full: number; resumed: number };
  /** Requests answered. */
  requests(): number;
  close(): Promise<void>;
}

/**
 * `ips` × `portsPerIp` HTTPS servers answering 204, each closing connections idle for
 * `keepAliveMs` (Node sends that as `Keep-Alive: timeout=`).
 */
export async function startGrid(opts: {
  certs: Certificates;
  ips: number;
  portsPerIp: number;
  keepAliveMs: number;
}): Promise<Grid> {
  let full = 0;
  let resumed = 0;
  let requests = 0;
  const servers: https.Server[] = [];
  const origins: string[] = [];
  for (let i = 1; i <= opts.ips; i++) {
    for (let p = 0; p < opts.portsPerIp; p++) {
      const server = https.createServer({ key: opts.certs.key, cert: opts.certs.cert }, (req, res) => {
        req.resume();
        req.on('end', () => {
          requests++;
          res.statusCode = 204;
          res.end();
        });
      });
      server.keepAliveTimeout = opts.keepAliveMs;
      server.on('secureConnection', (socket: TLSSocket) => {
        if (socket.isSessionReused()) resumed++;
        else full++;
      });
      await new Promise<void>((resolve) => server.listen(0, `127.0.0.${i}`, resolve));
      servers.push(server);
      origins.push(`https://127.0.0.${i}:${(server.address() as AddressInfo).port}`);
    }
  }
  return {
    origins,
    handshakes: () => ({ full, resumed }),
    requests: () => requests,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.closeAllConnections();
              s.close(() => resolve());
            }),
        ),
      );
    },
  };
}
