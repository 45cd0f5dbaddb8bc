// `npm run bench`: the dispatcher beside the limits of its own parts, all measured in one run on
// this machine. The receiver, the producer (this process) and every measured component run in
// separate processes, on loopback. Prints a table and writes bench/results/latest.json.
//
//   npm run bench                 full run (100,000 events; several minutes)
//   npm run bench -- --smoke      tiny numbers, to check the harness works (CI runs this)
//   npm run bench -- --profile    also writes a --cpu-prof profile of the fan-out 1 dispatcher run
//                                 (with --compare: of the current build's first round)
//   npm run bench -- --events N   scale the event counts (ad-hoc runs)
//   npm run bench -- --compare DIR   only (c) at fan-out 1, alternating this build with the one
//                                 in DIR (another checkout, built), 3 rounds each: before/after
//
// A run that loses deliveries (or whose sampled signatures fail) says so and exits 1.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import {
  compareBuilds,
  cpuUsPerDelivery,
  type DispatcherRun,
  endToEnd,
  runNaive,
  withEndpointLatency,
} from './end-to-end.js';
import {
  type Bench,
  createTopics,
  envOf,
  flags,
  log,
  nextMessage,
  problems,
  putSubscriptions,
  RECEIVER_PORTS,
  results,
  root,
  SECRET,
  SIZE,
  SMOKE,
  shapeOf,
  spawnTs,
  startDispatcher,
  stopDispatcher,
} from './harness.js';
import { latency } from './latency.js';
import { consumeLimits, httpLimit } from './limits.js';
import { memory } from './memory.js';

/** Starts the local stack (it is a no-op when it is up) and returns its endpoints. */
function stackUp(): Record<string, string> {
  const up = spawnSync(process.execPath, [path.join(root, 'stack/stack.mjs'), 'up'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (up.status !== 0) throw new Error('the local stack did not start');
  return Object.fromEntries(
    up.stdout
      .trim()
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;
}

async function main(): Promise<void> {
  log(SMOKE ? 'smoke run' : 'full run');
  if (spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' }).status !== 0) throw new Error('build failed');
  const stack = stackUp();
  const kafka = new Kafka({ clientId: 'bench', brokers: stack.KAFKA_BROKERS!.split(','), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const base = `bench.${Date.now().toString(36)}`;
  const rx = spawnTs('bench/receiver.ts', [], { BENCH_PORTS: String(RECEIVER_PORTS), BENCH_SECRET: SECRET });
  const { ports } = await nextMessage<{ ports: number[] }>(rx, 'ready');
  const bench: Bench = { stack, admin, producer, base, rx, ports };
  const fo1 = shapeOf('fo1', 1, base);
  const fo10 = shapeOf('fo10', 10, base);
  try {
    for (const s of [fo1, fo10]) {
      await createTopics(admin, s);
      await putSubscriptions(producer, s, ports);
    }
    // Warm the table once per shape (a dispatcher that loads it and leaves).
    for (const s of [fo1, fo10]) await stopDispatcher(await startDispatcher(envOf(s, stack, `${base}.warm.${s.name}`)));

    if (flags.compare) {
      await compareBuilds(bench, fo1, path.resolve(flags.compare));
      if (problems.length > 0) process.exitCode = 1;
      return;
    }
    const { runs, fo1Events } = await endToEnd(bench, fo1, fo10);
    const { a } = await consumeLimits(bench, fo1Events);
    const b = await httpLimit(bench);
    const d = await runNaive(bench, fo1, fo1Events, SIZE.naiveEvents, `${base}.d`);
    results.naive = d;
    log(`(d) naive dispatcher: ${d.deliveriesPerSec.toFixed(0)} deliveries/s`);
    const { cSlow, dSlow } = await withEndpointLatency(bench, fo1, fo1Events);
    const c1 = runs[0]!.deliveriesPerSec;
    const { fixed, rawKafka, rawHttp } = await latency(bench, fo1, c1);
    const busiest = Math.max(...runs.map((r) => r.peakRssMb));
    const { backlogPeakRssMb } = await memory(bench, busiest);

    const ratios = {
      c_over_min_a_b: c1 / Math.min(a.eventsPerSec, b.requestsPerSec),
      c_over_d: c1 / d.deliveriesPerSec,
      p99_over_raw: fixed.p99 / (rawKafka.p99 + rawHttp.p99),
      c_over_d_at_endpoint_latency: cSlow.deliveriesPerSec / dSlow.deliveriesPerSec,
    };
    results.ratios = ratios;
    results.targets = {
      'c >= 0.7 × min(a, b) at fan-out 1': ratios.c_over_min_a_b >= 0.7,
      'c >= 10 × d': ratios.c_over_d >= 10,
      'p99 ratio at the fixed rate <= 2': ratios.p99_over_raw <= 2,
      // RSS under a GC sawtooth is noisy; what matters is that a backlog costs no more than work in flight.
      'RSS bounded under backlog (peak with the backlog pending ≤ peak of a busy run + 15%)':
        backlogPeakRssMb <= busiest * 1.15,
    };
    printTable(results, runs);
  } finally {
    rx.kill();
    await producer.disconnect();
    await dropTopicsAndKeys(bench, [fo1.redisPrefix, fo10.redisPrefix]).catch(() => {});
    await admin.disconnect();
  }
  const out = path.join(root, 'bench/results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(
    path.join(out, SMOKE ? 'smoke.json' : 'latest.json'),
    `${JSON.stringify({ ...results, problems }, null, 2)}\n`,
  );
  if (problems.length > 0) {
    log(`FAILED:\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
}

/** Deletes this run's topics and the Redis keys of its shapes. */
async function dropTopicsAndKeys(bench: Bench, redisPrefixes: string[]): Promise<void> {
  const mine = (await bench.admin.listTopics()).filter((t) => t.startsWith(`${bench.base}.`));
  await bench.admin.deleteTopics({ topics: mine });
  const redis = new Redis(bench.stack.REDIS_URL!);
  for (const prefix of redisPrefixes) {
    const keys = await redis.keys(`${prefix}*`);
    for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
  }
  redis.disconnect();
}

function printTable(r: Record<string, unknown>, runs: DispatcherRun[]): void {
  const rows: [string, string][] = [];
  const a = r.consumeLimit as { eventsPerSec: number };
  const b = r.httpLimit as { requestsPerSec: number; cpuUsPerRequest: number };
  const d = r.naive as { deliveriesPerSec: number };
  const lat = r.latency as Record<string, { p50: number; p99: number; max: number; offeredEventsPerSec?: number }>;
  const mem = r.memory as {
    peakRssMbBusiest: number;
    backlog: { peakRssMb: number; rssFirstThirdMb: number; rssLastThirdMb: number; pendingEvents: number };
  };
  rows.push(['(a) consume limit', `${a.eventsPerSec.toFixed(0)} events/s`]);
  const a2 = r.consumeLimitPlatformatic as { eventsPerSec: number };
  rows.push([
    "(a') consume limit, @platformatic/kafka",
    `${a2.eventsPerSec.toFixed(0)} events/s (${(a2.eventsPerSec / a.eventsPerSec).toFixed(2)} × kafkajs)`,
  ]);
  rows.push([
    '(b) HTTP limit',
    `${b.requestsPerSec.toFixed(0)} requests/s, client CPU ${b.cpuUsPerRequest.toFixed(0)} µs/request`,
  ]);
  for (const run of runs) {
    const each = run.dispatcherCpuSecondsEach;
    rows.push([
      `(c) ${run.name}`,
      `${run.deliveriesPerSec.toFixed(0)} deliveries/s, peak RSS ${run.peakRssMb.toFixed(0)} MB, dispatcher CPU ${cpuUsPerDelivery(run).toFixed(0)} µs/delivery${each.length > 1 ? ` (CPU s each: ${each.join(', ')})` : ''}`,
    ]);
  }
  rows.push(['(d) naive dispatcher', `${d.deliveriesPerSec.toFixed(0)} deliveries/s`]);
  for (const [k, v] of Object.entries(lat)) {
    rows.push([
      `(e) latency ${k}${v.offeredEventsPerSec ? ` @ ${v.offeredEventsPerSec}/s` : ''}`,
      `p50 ${v.p50.toFixed(1)} ms, p99 ${v.p99.toFixed(1)} ms, max ${v.max.toFixed(1)} ms`,
    ]);
  }
  rows.push(['(f) peak RSS, busiest run', `${mem.peakRssMbBusiest.toFixed(0)} MB`]);
  rows.push([
    `(f) RSS with ${mem.backlog.pendingEvents} pending`,
    `middle third ${mem.backlog.rssFirstThirdMb.toFixed(0)} MB, last third ${mem.backlog.rssLastThirdMb.toFixed(0)} MB, peak ${mem.backlog.peakRssMb.toFixed(0)} MB`,
  ]);
  const ratios = r.ratios as Record<string, number>;
  rows.push(['c / min(a, b)', ratios.c_over_min_a_b!.toFixed(2)]);
  rows.push(['c / d', ratios.c_over_d!.toFixed(1)]);
  const g = r.endpointLatency as {
    latencyMs: number;
    dispatcher: { deliveriesPerSec: number };
    naive: { deliveriesPerSec: number };
  };
  rows.push([
    `(g) c, fo1 × 1 replica, endpoint answering in ${g.latencyMs} ms`,
    `${g.dispatcher.deliveriesPerSec.toFixed(0)} deliveries/s`,
  ]);
  rows.push([`(g) d, endpoint answering in ${g.latencyMs} ms`, `${g.naive.deliveriesPerSec.toFixed(1)} deliveries/s`]);
  rows.push([
    `c / d with the endpoint answering in ${g.latencyMs} ms`,
    ratios.c_over_d_at_endpoint_latency!.toFixed(1),
  ]);
  rows.push(['p99 / (raw Kafka p99 + raw HTTP p99)', ratios.p99_over_raw!.toFixed(2)]);
  for (const [k, v] of Object.entries(r.targets as Record<string, boolean>))
    rows.push([`target: ${k}`, v ? 'met' : 'NOT met']);
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n\n`);
}

await main();
