// `npm run bench:connections`: what the number of busy connections costs the service's own send
// path. The service's Deliverer and HttpClient (body, headers, both signatures, undici's dispatch)
// POST to the bench receiver (its own process, 20 loopback origins) with 1, 4, 8, 16 and 32
// requests under way per origin, each level on connections of its own, alternated over 3 rounds.
// Prints, per level, the median requests/s and the client's CPU per request (user + kernel), and
// its ratio to the fewest connections. Needs no stack.
//
// What it answers: how much of a delivery's CPU is the send path, and whether spreading it over
// more connections (ENDPOINT_MAX_CONCURRENCY, MAX_CONNECTIONS_PER_ORIGIN) costs CPU. On 2026-12-01
// the send path alone cost 1.25 times as much a request on 640 connections as on 20, but the
// dispatcher end to end did not move (see docs/performance.md).
import { fork } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/index.js';
import { HttpClient, TargetGuard } from '../src/delivery/index.js';
import { sampleSubscription } from '../src/demo/sample-data.js';
import { activate } from '../src/subscriptions/index.js';
import { ask, nextMessage } from './ipc.js';
import { sendPath } from './send-path.js';

const root = path.resolve(import.meta.dirname, '..');
const { values: flags } = parseArgs({ options: { requests: { type: 'string', default: '40000' } } });
const REQUESTS = Number(flags.requests);
const ORIGINS = 20;
const PER_ORIGIN = [1, 4, 8, 16, 32];
const SECRET = 'bench-secret';
const log = (msg: string) => process.stderr.write(`[bench:connections] ${msg}\n`);

interface ReceiverStats {
  total: number;
  unique: number;
  sampled: number;
  badSignatures: number;
}

const rx = fork(path.join(root, 'bench/receiver.ts'), [], {
  execArgv: ['--import', 'tsx'],
  env: { ...process.env, BENCH_PORTS: String(ORIGINS), BENCH_SECRET: SECRET },
});
const { ports } = await nextMessage<{ ports: number[] }>(rx, 'ready');

// One webhook per origin.
const targets = ports.map((port) =>
  activate(sampleSubscription({ secret: SECRET, url: `http://127.0.0.1:${port}/hook` })),
);
const config = loadConfig({ DELIVERY_ALLOWLIST: '127.0.0.1/32' });

interface Round {
  requestsPerSec: number;
  cpuUsPerRequest: number;
  kernelUsPerRequest: number;
}

/** A sender with `perOrigin` connections to each origin, kept open across rounds. */
function sender(perOrigin: number) {
  const http = new HttpClient({
    ...config.delivery,
    maxConnectionsPerOrigin: perOrigin,
    guard: new TargetGuard(config.delivery.allowlist),
  });
  const deliver = sendPath(http, config.delivery.userAgent);
  let serial = 0;
  const one = (): Promise<void> => {
    const at = serial++;
    return deliver(targets[at % ORIGINS]!, `evt_${perOrigin}_${at}`);
  };
  return {
    http,
    /** `count` requests, `perOrigin × ORIGINS` under way at a time. */
    async round(count: number): Promise<Round> {
      let started = 0;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      await Promise.all(
        Array.from({ length: perOrigin * ORIGINS }, async () => {
          while (started < count) {
            started++;
            await one();
          }
        }),
      );
      const cpu = process.cpuUsage(cpu0);
      return {
        requestsPerSec: (count / (performance.now() - t0)) * 1000,
        cpuUsPerRequest: (cpu.user + cpu.system) / count,
        kernelUsPerRequest: cpu.system / count,
      };
    },
  };
}

const senders = PER_ORIGIN.map((perOrigin) => ({ perOrigin, ...sender(perOrigin) }));
const rounds = new Map<number, Round[]>(PER_ORIGIN.map((n) => [n, []]));
try {
  // A warm-up round opens each level's connections and compiles the path; it is not counted.
  for (const s of senders) await s.round(Math.min(REQUESTS, 5000));
  await ask(rx, { cmd: 'reset' }, 'reset');
  for (let round = 1; round <= 3; round++) {
    for (const s of senders) {
      const r = await s.round(REQUESTS);
      rounds.get(s.perOrigin)!.push(r);
      log(
        `round ${round}, ${s.perOrigin * ORIGINS} connections: ${r.requestsPerSec.toFixed(0)} requests/s, ${r.cpuUsPerRequest.toFixed(1)} µs CPU a request`,
      );
    }
  }
  const stats = await ask<ReceiverStats>(rx, { cmd: 'stats' }, 'stats');
  const expected = REQUESTS * 3 * PER_ORIGIN.length;
  if (stats.unique !== expected || stats.total !== expected || stats.badSignatures > 0 || stats.sampled === 0) {
    throw new Error(
      `receiver counted ${JSON.stringify(stats)}, expected ${expected} unique requests, signatures valid`,
    );
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[1]!;
  const base = median(rounds.get(PER_ORIGIN[0]!)!.map((r) => r.cpuUsPerRequest));
  console.log('| busy connections | requests/s | client CPU a request | of which kernel | ratio to the fewest |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const [perOrigin, rs] of rounds) {
    const cpu = median(rs.map((r) => r.cpuUsPerRequest));
    console.log(
      `| ${perOrigin * ORIGINS} | ${median(rs.map((r) => r.requestsPerSec)).toFixed(0)} | ${cpu.toFixed(1)} µs | ${median(rs.map((r) => r.kernelUsPerRequest)).toFixed(1)} µs | ${(cpu / base).toFixed(2)} |`,
    );
  }
} finally {
  await Promise.all(senders.map((s) => s.http.close()));
  rx.kill();
}
