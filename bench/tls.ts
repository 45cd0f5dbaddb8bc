// `npm run bench -- --tls`: the send path in the regime real endpoints set: HTTPS, many origins,
// sparse traffic. A certificate authority is made for the run; a receiver process serves a grid of
// loopback origins (127.0.0.k × ports), plain or HTTPS, and counts handshakes and connections; each
// row runs the service's Deliverer and HttpClient in a process of its own (bench/tls-client.ts),
// whose CPU and RSS are the row's. Needs no stack (no Kafka, registry nor Redis).
//
// Rows: A/B one origin, plain/HTTPS, a burst; E/C 2,000 origins, plain/HTTPS, a burst; 100 origins
// HTTPS, a burst; DE/D 2,000 origins, plain/HTTPS, 300 deliveries/s with the receiver closing
// connections idle 5 s; DL as D with 75 s; DN/DN0 as D with a host name per origin, DNS answers
// cached DNS_CACHE_TTL_MS or not (questions a delivery); and the floor: a bare TLS client's full and resumed
// handshakes. `--smoke` shrinks everything. Writes bench/results/tls.json.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeCertificates } from '../test/helpers/tls-grid.js';
import { ask, nextMessage } from './ipc.js';

const root = path.resolve(import.meta.dirname, '..');
const log = (msg: string) => process.stderr.write(`[bench:tls] ${msg}\n`);

interface Row {
  name: string;
  tls: boolean;
  ips: number;
  portsPerIp: number;
  keepAliveMs: number;
  mode: 'burst' | 'paced';
  /** Burst: measured after a first one, once the server has closed its connections. */
  again?: boolean;
  /** HTTP/2 offered by both ends. */
  h2?: boolean;
  /** Origins named by host names, one each, resolved by a counting resolver; and DNS_CACHE_TTL_MS. */
  hosts?: { dnsTtlMs?: number };
  /** Burst: deliveries. Paced: cycles over every origin. */
  size: number;
  rate?: number;
}

function rows(smoke: boolean): Row[] {
  const grid = smoke ? { ips: 2, portsPerIp: 10 } : { ips: 100, portsPerIp: 20 };
  const origins = grid.ips * grid.portsPerIp;
  const burst = smoke ? 400 : 20_000;
  const rate = smoke ? 100 : 300;
  const cycles = smoke ? 1 : 2;
  // A burst of `burst` deliveries, or `cycles` visits of every origin at `rate`; the server's
  // keep-alive 5 s unless the row says otherwise.
  const burstRow = (name: string, tls: boolean, more: Partial<Row> = {}): Row => ({
    name,
    tls,
    ...grid,
    keepAliveMs: 5000,
    mode: 'burst',
    size: burst,
    ...more,
  });
  const pacedRow = (name: string, tls: boolean, more: Partial<Row> = {}): Row =>
    burstRow(name, tls, { mode: 'paced', size: cycles, rate, ...more });
  return [
    burstRow('A: 1 plain origin, burst', false, { ips: 1, portsPerIp: 1 }),
    burstRow('B: 1 HTTPS origin, burst', true, { ips: 1, portsPerIp: 1 }),
    burstRow('H100: 100 HTTPS origins, burst', true, { ips: 5, portsPerIp: 20 }),
    burstRow(`E: ${origins} plain origins, burst`, false),
    burstRow(`C: ${origins} HTTPS origins, burst`, true),
    burstRow('C2: as C, again once the server closed its connections (idle 3 s)', true, {
      keepAliveMs: 3000,
      again: true,
    }),
    pacedRow(`DE: ${origins} plain origins, ${rate}/s, keep-alive 5 s`, false),
    pacedRow(`D: ${origins} HTTPS origins, ${rate}/s, keep-alive 5 s`, true),
    pacedRow(`DL: ${origins} HTTPS origins, ${rate}/s, keep-alive 75 s`, true, { keepAliveMs: 75_000 }),
    // Host names instead of IP literals, one per origin: DNS questions a delivery, cached or not.
    pacedRow('DN: as D, a host name per origin', true, { hosts: {} }),
    pacedRow('DN0: as DN, DNS_CACHE_TTL_MS=0', true, { hosts: { dnsTtlMs: 0 } }),
    // HTTP/2 where both ends offer it (ALPN): a burst, and the sparse regime.
    burstRow('C-h2: as C, HTTP/2', true, { h2: true }),
    pacedRow('D-h2: as D, HTTP/2', true, { h2: true }),
  ];
}

function child(file: string, env: Record<string, string>) {
  return fork(path.join(root, file), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env } });
}

interface ReceiverStats {
  requests: number;
  full: number;
  resumed: number;
  open: number;
  peakOpen: number;
  h2Sessions: number;
}

/** @param only row names (what comes before their colon) to run; every row by default. */
export async function tlsBench(smoke: boolean, only?: readonly string[]): Promise<void> {
  const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bw-bench-tls-'));
  const certs = makeCertificates(
    Array.from({ length: 100 }, (_, i) => `127.0.0.${i + 1}`),
    ['*.grid.test'],
  );
  fs.writeFileSync(path.join(certDir, 'ca.pem'), certs.ca);
  fs.writeFileSync(path.join(certDir, 'key.pem'), certs.key);
  fs.writeFileSync(path.join(certDir, 'cert.pem'), certs.cert);
  const clientEnv = { NODE_EXTRA_CA_CERTS: path.join(certDir, 'ca.pem') };
  const out: Record<string, unknown>[] = [];
  try {
    for (const row of rows(smoke).filter((r) => !only || only.includes(r.name.split(':')[0]!))) {
      const rx = child('bench/tls-receiver.ts', {
        BENCH_IPS: String(row.ips),
        BENCH_PORTS_PER_IP: String(row.portsPerIp),
        BENCH_KEEPALIVE_MS: String(row.keepAliveMs),
        ...(row.tls ? { BENCH_CERT_DIR: certDir } : {}),
        ...(row.h2 ? { BENCH_H2: '1' } : {}),
      });
      const { origins } = await nextMessage<{ origins: string[] }>(rx, 'ready');
      const client = child('bench/tls-client.ts', {
        ...clientEnv,
        ...(row.h2 ? { BENCH_H2: '1' } : {}),
        ...(row.hosts ? { BENCH_HOSTS: '1' } : {}),
        ...(row.hosts?.dnsTtlMs !== undefined ? { BENCH_DNS_TTL_MS: String(row.hosts.dnsTtlMs) } : {}),
      });
      try {
        await nextMessage(client, 'ready');
        const done = nextMessage<Record<string, number>>(client, 'done');
        if (row.mode === 'burst') {
          const concurrency = Math.min(1000, 16 * origins.length);
          client.send({ cmd: 'burst', origins, count: row.size, concurrency, again: row.again === true });
        } else {
          client.send({ cmd: 'paced', origins, rate: row.rate, cycles: row.size });
        }
        if (row.mode === 'paced' || row.again) {
          // The unmeasured part is over: the receiver's counters start again.
          await nextMessage(client, 'warm');
          await ask(rx, { cmd: 'reset' }, 'reset');
          client.send({ cmd: 'measure' });
        }
        const r = await done;
        const seen = await ask<ReceiverStats>(rx, { cmd: 'stats' }, 'stats');
        const handshakes = seen.full + seen.resumed;
        const result = {
          row: row.name,
          deliveries: r.deliveries,
          cpuUsPerDelivery: Math.round(r.cpuUs! / r.deliveries!),
          deliveriesPerSec: Math.round((r.deliveries! / r.wallMs!) * 1000),
          handshakesPerDelivery: row.tls ? Number((handshakes / r.deliveries!).toFixed(3)) : null,
          resumedShare: row.tls && handshakes > 0 ? Number((seen.resumed / handshakes).toFixed(3)) : null,
          peakConnections: seen.peakOpen,
          connectionsAtEnd: seen.open,
          ...(row.h2 ? { h2Connections: seen.h2Sessions } : {}),
          ...(row.hosts ? { dnsQuestionsPerDelivery: Number((r.dnsQuestions! / r.deliveries!).toFixed(3)) } : {}),
          peakRssMb: Math.round(r.peakRssMb!),
          endRssMb: Math.round(r.endRssMb!),
          client: Object.fromEntries(
            Object.entries(r).filter(
              ([k]) => !['cmd', 'deliveries', 'cpuUs', 'wallMs', 'peakRssMb', 'endRssMb', 'dnsQuestions'].includes(k),
            ),
          ),
        };
        if (seen.requests < r.deliveries!)
          throw new Error(`${row.name}: ${seen.requests} requests arrived of ${r.deliveries}`);
        out.push(result);
        log(JSON.stringify(result));
      } finally {
        client.kill();
        rx.kill();
      }
    }
    // The floor: a bare TLS client, full and resumed handshakes to one origin of the grid.
    const rx = child('bench/tls-receiver.ts', { BENCH_IPS: '1', BENCH_PORTS_PER_IP: '1', BENCH_CERT_DIR: certDir });
    const { origins } = await nextMessage<{ origins: string[] }>(rx, 'ready');
    const client = child('bench/tls-client.ts', clientEnv);
    try {
      await nextMessage(client, 'ready');
      const count = smoke ? 50 : 2000;
      const f = await ask<{ full: Record<string, number>; resumed: Record<string, number> }>(
        client,
        { cmd: 'floor', origin: origins[0], count },
        'done',
      );
      for (const kind of ['full', 'resumed'] as const) {
        const m = f[kind];
        const result = {
          row: `floor: bare TLS client, ${kind} handshakes`,
          handshakes: count,
          cpuUsPerHandshake: Math.round(m.cpuUs! / count),
          handshakesPerSec: Math.round((count / m.wallMs!) * 1000),
        };
        out.push(result);
        log(JSON.stringify(result));
      }
    } finally {
      client.kill();
      rx.kill();
    }
  } finally {
    fs.rmSync(certDir, { recursive: true, force: true });
  }
  fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
  fs.writeFileSync(
    path.join(root, 'bench/results/tls.json'),
    `${JSON.stringify({ at: new Date().toISOString(), smoke, rows: out }, null, 2)}\n`,
  );
  console.log(
    '| row | CPU µs a delivery | deliveries/s | handshakes a delivery | resumed | peak connections | peak RSS MB | DNS questions a delivery |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of out) {
    if ('cpuUsPerHandshake' in r) {
      console.log(
        `| ${r.row} | ${r.cpuUsPerHandshake} (a handshake) | ${r.handshakesPerSec} handshakes/s | – | – | – | – | – |`,
      );
    } else {
      console.log(
        `| ${r.row} | ${r.cpuUsPerDelivery} | ${r.deliveriesPerSec} | ${r.handshakesPerDelivery ?? '–'} | ${r.resumedShare === null ? '–' : `${Math.round((r.resumedShare as number) * 100)}%`} | ${r.peakConnections} | ${r.peakRssMb} | ${r.dnsQuestionsPerDelivery ?? '–'} |`,
      );
    }
  }
}
