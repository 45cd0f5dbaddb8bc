// `npm run bench -- --tls --e2e`: the HTTPS regime through the whole dispatcher (Kafka, the table in
// Redis, the send path, outcomes), as the issue that asked for the regime measured it: fan-out 1,
// 12 partitions, 20,000 events produced at once to a dispatcher already running, its CPU from
// /proc. Rows: A, 1 plain origin; E, 2,000 plain origins; C, 2,000 HTTPS origins, every session
// cold. The send-path rows (`--tls`) isolate what the connector changes; these give the ratio a
// replica sees.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Admin, Producer } from 'kafkajs';
import { sampleSubscription } from '../src/demo/sample-data.js';
import { makeCertificates } from '../test/helpers/tls-grid.js';
import {
  ask,
  cpuSeconds,
  createTopics,
  envOf,
  log,
  nextMessage,
  produceAll,
  SECRET,
  SMOKE,
  shapeOf,
  spawnTs,
  startDispatcher,
  stopDispatcher,
  variablesOf,
  waitJoined,
} from './harness.js';

interface E2eRow {
  name: string;
  tls: boolean;
  ips: number;
  portsPerIp: number;
}

interface ReceiverStats {
  requests: number;
  full: number;
  resumed: number;
  peakOpen: number;
}

/** BENCH_DISPATCHER_ENV="K=V,K=V": settings of the dispatchers measured, over the bench's own. */
const extraEnv: Record<string, string> = variablesOf(process.env.BENCH_DISPATCHER_ENV);

export async function tlsEndToEnd(stack: Record<string, string>, admin: Admin, producer: Producer, base: string) {
  const grid = SMOKE ? { ips: 2, portsPerIp: 10 } : { ips: 100, portsPerIp: 20 };
  const origins = grid.ips * grid.portsPerIp;
  const events = SMOKE ? 400 : 20_000;
  const rows: E2eRow[] = [
    { name: 'A: 1 plain origin', tls: false, ips: 1, portsPerIp: 1 },
    { name: `E: ${origins} plain origins`, tls: false, ...grid },
    { name: `C: ${origins} HTTPS origins, cold`, tls: true, ...grid },
  ];
  const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bw-bench-tls-'));
  const certs = makeCertificates(Array.from({ length: grid.ips }, (_, i) => `127.0.0.${i + 1}`));
  fs.writeFileSync(path.join(certDir, 'ca.pem'), certs.ca);
  fs.writeFileSync(path.join(certDir, 'key.pem'), certs.key);
  fs.writeFileSync(path.join(certDir, 'cert.pem'), certs.cert);
  const out: Record<string, number | string | null>[] = [];
  if (Object.keys(extraEnv).length > 0) log(`tls e2e: dispatchers with ${JSON.stringify(extraEnv)}`);
  try {
    for (const [k, row] of rows.entries()) {
      const rx = spawnTs('bench/tls-receiver.ts', [], {
        BENCH_IPS: String(row.ips),
        BENCH_PORTS_PER_IP: String(row.portsPerIp),
        BENCH_KEEPALIVE_MS: '5000',
        ...(row.tls ? { BENCH_CERT_DIR: certDir } : {}),
      });
      try {
        const { origins: urls } = await nextMessage<{ origins: string[] }>(rx, 'ready');
        // One webhook per origin-sized project set: event j goes to project j % n, its one webhook.
        const shape = { ...shapeOf(`tls${k}`, 1, base), projects: origins };
        await createTopics(admin, shape);
        const messages = Array.from({ length: origins }, (_, i) => {
          const sub = sampleSubscription({
            id: `wh_${i}`,
            url: `${urls[i % urls.length]}/hook/${i}`,
            secret: SECRET,
            metadata: { events: ['TODO_CREATED'], projectIds: [`proj_${i}`] },
          });
          return { key: sub.id, value: JSON.stringify(sub) };
        });
        for (let i = 0; i < messages.length; i += 500)
          await producer.send({ topic: shape.topics.subscriptions, messages: messages.slice(i, i + 500) });
        const d = await startDispatcher({
          ...envOf(shape, stack, `${base}.${shape.name}`),
          DELIVERY_ALLOWLIST: '127.0.0.0/8',
          NODE_EXTRA_CA_CERTS: path.join(certDir, 'ca.pem'),
          ...extraEnv,
        });
        try {
          await waitJoined(admin, `${base}.${shape.name}`, 1);
          const cpu0 = cpuSeconds(d.proc.pid!);
          const t0 = performance.now();
          await produceAll(producer, shape, events, `e2e${k}`);
          const deadline = Date.now() + 300_000;
          let seen: ReceiverStats;
          for (;;) {
            seen = await ask<ReceiverStats>(rx, { cmd: 'stats' }, 'stats');
            if (seen.requests >= events || Date.now() > deadline) break;
            await new Promise((r) => setTimeout(r, 100));
          }
          const wallMs = performance.now() - t0;
          const cpuUs = (cpuSeconds(d.proc.pid!) - cpu0) * 1e6;
          if (seen.requests < events) throw new Error(`${row.name}: ${seen.requests} of ${events} delivered`);
          const handshakes = seen.full + seen.resumed;
          const result = {
            row: row.name,
            deliveries: seen.requests,
            cpuUsPerDelivery: Math.round(cpuUs / seen.requests),
            deliveriesPerSec: Math.round((seen.requests / wallMs) * 1000),
            handshakesPerDelivery: row.tls ? Number((handshakes / seen.requests).toFixed(3)) : null,
            resumedShare: row.tls && handshakes > 0 ? Number((seen.resumed / handshakes).toFixed(3)) : null,
            peakConnections: seen.peakOpen,
            peakRssMb: Math.round(d.peakRssMb()),
          };
          out.push(result);
          log(`tls e2e: ${JSON.stringify(result)}`);
        } finally {
          await stopDispatcher(d);
        }
      } finally {
        rx.kill();
      }
    }
  } finally {
    fs.rmSync(certDir, { recursive: true, force: true });
  }
  const a = out[0]!;
  console.log(
    '| row (dispatcher, Kafka to endpoint) | CPU µs a delivery | deliveries/s | ÷ A (deliveries/s) | handshakes a delivery | resumed | peak connections | peak RSS MB |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of out) {
    const ratio = ((r.deliveriesPerSec as number) / (a.deliveriesPerSec as number)).toFixed(2);
    const resumed = r.resumedShare === null ? '–' : `${Math.round((r.resumedShare as number) * 100)}%`;
    console.log(
      `| ${r.row} | ${r.cpuUsPerDelivery} | ${r.deliveriesPerSec} | ${ratio} | ${r.handshakesPerDelivery ?? '–'} | ${resumed} | ${r.peakConnections} | ${r.peakRssMb} |`,
    );
  }
  return out;
}
