// `npm run bench`: the dispatcher beside the limits of its own parts, all measured in one run on
// this machine. The receiver, the producer (this process) and every measured component run in
// separate processes, on loopback. Prints a table and writes bench/results/latest.json.
//
//   npm run bench                 full run (100,000 events; several minutes)
//   npm run bench -- --smoke      tiny numbers, to check the harness works (CI runs this)
//   npm run bench -- --profile    also writes a --cpu-prof profile of the fan-out 1 dispatcher run
//                                 (with --compare: of the current build's first round)
//   npm run bench -- --events N   scale the event counts (ad-hoc runs)
//   npm run bench -- --scaling    only (h): duplicates and latency while replicas come and go
//   npm run bench -- --tls        only the HTTPS regime: many origins, sparse traffic (bench/tls.ts)
//                                 (--rows D,DN: only the rows so named, and the floor)
//   npm run bench -- --tls --e2e  the same regime through the whole dispatcher: bursts to 1 and
//                                 2,000 plain origins and 2,000 HTTPS ones (bench/tls-e2e.ts)
//   npm run bench -- --compare DIR   only (c) at fan-out 1, alternating this build with the one
//                                 in DIR (another checkout, built), 3 rounds each (--rounds N):
//                                 before/after (BENCH_BASELINE_ENV=K=V,…: the baseline's variables;
//                                 with DIR this checkout, it measures a setting, e.g.
//                                 DELIVERY_LOG=off; BENCH_CURRENT_ENV the current's, for an A/A)
//
// A run that loses deliveries (or whose sampled signatures fail) says so and exits 1.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Partitioners } from 'kafkajs';
import {
  compareBuilds,
  cpuUsPerDelivery,
  type DispatcherRun,
  endToEnd,
  kernelShare,
  runNaive,
  secondHalfCpuUsPerDelivery,
  wholeUs,
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
import { benchKafka } from './kafka.js';
import { latency } from './latency.js';
import { consumeLimits, httpLimit } from './limits.js';
import { memory } from './memory.js';
import { type ScalingRun, scaling } from './scaling.js';
import { tlsBench } from './tls.js';
import { tlsEndToEnd } from './tls-e2e.js';

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
  if (flags.tls && !flags.e2e) {
    await tlsBench(SMOKE, flags.rows?.split(','));
    return;
  }
  log(SMOKE ? 'smoke run' : 'full run');
  if (spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' }).status !== 0) throw new Error('build failed');
  const stack = stackUp();
  const kafka = benchKafka(stack.KAFKA_BROKERS!);
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const base = `bench.${Date.now().toString(36)}`;
  if (flags.tls) {
    try {
      results.tlsEndToEnd = await tlsEndToEnd(stack, admin, producer, base);
      writeResults('tls-e2e.json');
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
    return;
  }
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

    if (flags.scaling) {
      printRows([...scalingRows(await scaleEvents(bench)), ...targetRows(results)]);
      writeResults('scaling.json');
      return;
    }
    if (flags.compare) {
      await compareBuilds(bench, fo1, path.resolve(flags.compare));
      writeResults('compare.json');
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
    const scaled = await scaleEvents(bench);

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
      ...scalingTargets(scaled),
    };
    printRows([...tableRows(results, runs), ...scalingRows(scaled), ...targetRows(results)]);
  } finally {
    rx.kill();
    await producer.disconnect();
    await dropTopicsAndKeys(bench, [fo1.redisPrefix, fo10.redisPrefix]).catch(() => {});
    await admin.disconnect();
  }
  writeResults(SMOKE ? 'smoke.json' : 'latest.json');
}

function writeResults(file: string): void {
  const out = path.join(root, 'bench/results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, file), `${JSON.stringify({ ...results, problems }, null, 2)}\n`);
  if (problems.length > 0) {
    log(`FAILED:\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  }
}

/** (h) A graceful scale event, and a SIGKILL at the default session timeout (and, in a full run, at 6 s). */
async function scaleEvents(bench: Bench): Promise<ScalingRun[]> {
  const runs = [await scaling(bench, 'graceful'), await scaling(bench, 'killed')];
  if (!SMOKE) runs.push(await scaling(bench, 'killed', 6000));
  results.targets = { ...(results.targets as object), ...scalingTargets(runs) };
  return runs;
}

function scalingTargets(runs: ScalingRun[]): Record<string, boolean> {
  return {
    '0 duplicates on a graceful scale event': runs
      .filter((r) => r.event === 'graceful')
      .every((r) => r.duplicates === 0),
    '≤ 1% duplicates with a SIGKILL': runs.filter((r) => r.event === 'killed').every((r) => r.duplicateShare <= 0.01),
  };
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

function tableRows(r: Record<string, unknown>, runs: DispatcherRun[]): [string, string][] {
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
      `${run.deliveriesPerSec.toFixed(0)} deliveries/s, peak RSS ${run.peakRssMb.toFixed(0)} MB, dispatcher CPU ${cpuUsPerDelivery(run).toFixed(0)} µs/delivery, ${wholeUs(secondHalfCpuUsPerDelivery(run))} over the second half (${kernelShare(run)}% in the kernel; ${run.dispatcherFaultsPerDelivery} page faults/delivery)${each.length > 1 ? ` (CPU s each: ${each.join(', ')})` : ''}`,
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
  return rows;
}

function scalingRows(runs: ScalingRun[]): [string, string][] {
  return runs.map((run) => [
    `(h) scaling 1 → 3 → ${run.event === 'graceful' ? '1, SIGTERM' : '2, one SIGKILL'} @ ${run.eventsPerSec}/s, fan-out 2${run.event === 'killed' ? `, session ${run.sessionTimeoutMs / 1000} s` : ''}`,
    `${run.duplicates} duplicates of ${run.deliveries} (${(run.duplicateShare * 100).toFixed(2)}%), p99 ${run.p99.toFixed(1)} ms, max ${run.max.toFixed(1)} ms`,
  ]);
}

function targetRows(r: Record<string, unknown>): [string, string][] {
  return Object.entries(r.targets as Record<string, boolean>).map(([k, v]) => [`target: ${k}`, v ? 'met' : 'NOT met']);
}

function printRows(rows: [string, string][]): void {
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n\n`);
}

await main();
