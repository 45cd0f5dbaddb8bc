// (c) The dispatcher end to end: 1, 2 and 3 replicas at fan-out 1, 1 and 2 at fan-out 10, with the
// CPU of every process; --compare alternates two builds. (d) The naive dispatcher beside it, and
// (g) both again against an endpoint that answers in ENDPOINT_LATENCY_MS.
import fs from 'node:fs';
import path from 'node:path';
import {
  ask,
  type Bench,
  check,
  cpuOf,
  cpuSeconds,
  createTopicsRetrying,
  type Dispatcher,
  ENDPOINT_LATENCY_MS,
  envOf,
  flags,
  log,
  machineProcesses,
  metric,
  nextMessage,
  procTimes,
  produceAll,
  results,
  root,
  type Shape,
  SIZE,
  spawnTs,
  startDispatcher,
  stopDispatcher,
  variablesOf,
  waitForDeliveries,
  waitJoined,
} from './harness.js';
import { summarizeProfile } from './profile-summary.js';

export interface DispatcherRun {
  name: string;
  shape: string;
  replicas: number;
  events: number;
  deliveries: number;
  duplicates: number;
  seconds: number;
  deliveriesPerSec: number;
  produceEventsPerSec: number;
  peakRssMb: number;
  signaturesSampled: number;
  cpuSeconds: Record<string, number>;
  dispatcherCpuSecondsEach: number[];
  /**
   * The dispatchers' CPU from the first poll past half the deliveries to the end, and the
   * deliveries since that poll. It leaves out what a fresh process pays once (code optimised,
   * connections opened, heap grown) and most of the time the bench's producer shares the cores.
   */
  secondHalf: { deliveries: number; dispatcherCpuSeconds: number };
  /** Of the dispatchers' CPU seconds, those spent in the kernel (socket calls, page faults). */
  dispatcherSystemSeconds: number;
  /** Minor page faults of the dispatchers per delivery: each is a fresh page touched for the first time. */
  dispatcherFaultsPerDelivery: number;
  retriesScheduled: number;
  endpointSaturated: number;
}

/** One end-to-end run on an events topic of its own, so no run re-reads another's events. */
export async function runDispatcher(
  bench: Bench,
  shape: Shape,
  count: number,
  replicas: number,
  label: string,
  profile?: string,
  cwd = root,
  env: Record<string, string> = {},
): Promise<{ run: DispatcherRun; eventsTopic: string }> {
  const { admin, producer, rx, stack, base } = bench;
  const name = `${shape.name} × ${replicas} replica${replicas > 1 ? 's' : ''}${label}`;
  await ask(rx, { cmd: 'reset' }, 'reset');
  const id = `${shape.name}.${replicas}${label.replace(/\W+/g, '')}`;
  const group = `${base}.c.${id}`;
  // Events and results of the run's own: each run's delivery log reads only its results.
  const runShape = {
    ...shape,
    topics: { ...shape.topics, events: `${base}.c.${id}.events`, results: `${base}.c.${id}.results` },
  };
  await createTopicsRetrying(
    admin,
    [runShape.topics.events, runShape.topics.results].map((topic) => ({
      topic,
      numPartitions: 12,
      replicationFactor: 1,
    })),
  );
  // Replicas join first, then the events are produced.
  const ds = await Promise.all(
    Array.from({ length: replicas }, () => startDispatcher({ ...envOf(runShape, stack, group), ...env }, profile, cwd)),
  );
  await waitJoined(admin, group, replicas);
  const procs = machineProcesses(ds, rx);
  const cpuBefore = cpuOf(procs);
  const eachBefore = ds.map((d) => cpuSeconds(d.proc.pid!));
  const kernelBefore = kernelOf(ds);
  const produceRate = await produceAll(producer, runShape, count, id);
  const expected = count * shape.fanout;
  let peak = 0;
  let half = null as { unique: number; dispatcherCpu: number } | null;
  const s = await waitForDeliveries(rx, expected, 30 * 60_000, async (progress) => {
    peak = Math.max(peak, ...ds.map((d) => d.rssMb()));
    // The first poll past half; none when it comes past three quarters (too few left to measure).
    if (!half && progress.unique >= expected / 2) {
      const dispatcherCpu = cpuOf({ dispatcher: procs.dispatcher! }).dispatcher!;
      half = progress.unique <= expected * 0.75 ? { unique: progress.unique, dispatcherCpu } : null;
    }
  });
  const peakRss = Math.max(peak, ...ds.map((d) => d.peakRssMb()));
  const cpuAfter = cpuOf(procs);
  const eachCpu = ds.map((d, i) => +(cpuSeconds(d.proc.pid!) - eachBefore[i]!).toFixed(2));
  const kernelAfter = kernelOf(ds);
  let retried = 0;
  let saturated = 0;
  for (const x of ds) {
    retried += await metric(x, 'blue_webhooks_retries_scheduled_total');
    saturated += await metric(x, 'blue_webhooks_endpoint_saturated_total');
  }
  const cpu = Object.fromEntries(Object.keys(cpuAfter).map((k) => [k, +(cpuAfter[k]! - cpuBefore[k]!).toFixed(2)]));
  await Promise.all(ds.map(stopDispatcher));
  if (profile) for (const line of summarizeProfile(newestProfile(profile), 12)) log(line);
  check(name, s, expected);
  const seconds = (s.lastAt - s.firstAt) / 1000;
  log(
    `${name}: ${(s.unique / seconds).toFixed(0)} deliveries/s (${seconds.toFixed(1)} s; producer ${produceRate.toFixed(0)} events/s; peak RSS ${peakRss.toFixed(0)} MB)`,
  );
  if (retried > 0) log(`  ${retried} retries scheduled (${saturated} for a saturated endpoint)`);
  log(
    `  CPU seconds during the run: ${Object.entries(cpu)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}${replicas > 1 ? ` (each dispatcher: ${eachCpu.join(', ')})` : ''}`,
  );
  const run: DispatcherRun = {
    name,
    shape: shape.name,
    replicas,
    events: count,
    deliveries: s.unique,
    duplicates: s.total - s.unique,
    seconds,
    deliveriesPerSec: s.unique / seconds,
    produceEventsPerSec: produceRate,
    peakRssMb: peakRss,
    signaturesSampled: s.sampled,
    cpuSeconds: cpu,
    dispatcherCpuSecondsEach: eachCpu,
    secondHalf: secondHalfOf(half, s.unique, cpuAfter.dispatcher!),
    dispatcherSystemSeconds: +(kernelAfter.systemSeconds - kernelBefore.systemSeconds).toFixed(2),
    dispatcherFaultsPerDelivery: +((kernelAfter.minorFaults - kernelBefore.minorFaults) / s.unique).toFixed(2),
    retriesScheduled: retried,
    endpointSaturated: saturated,
  };
  log(
    `  dispatcher in the kernel: ${run.dispatcherSystemSeconds} CPU s (${kernelShare(run)}%); ${run.dispatcherFaultsPerDelivery} page faults per delivery`,
  );
  log(
    `  dispatcher CPU per delivery: ${cpuUsPerDelivery(run).toFixed(0)} µs over the run, ${wholeUs(secondHalfCpuUsPerDelivery(run))} µs over its second half`,
  );
  return { run, eventsTopic: runShape.topics.events };
}

/** The profile a dispatcher wrote last into `dir` (it writes one as it exits). */
function newestProfile(dir: string): string {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f));
  return files.sort((x, y) => fs.statSync(y).mtimeMs - fs.statSync(x).mtimeMs)[0]!;
}

/** Kernel CPU seconds and minor page faults of the dispatchers so far. */
function kernelOf(ds: Dispatcher[]): { systemSeconds: number; minorFaults: number } {
  const times = ds.map((d) => procTimes(d.proc.pid!));
  return {
    systemSeconds: times.reduce((n, t) => n + t.systemSeconds, 0),
    minorFaults: times.reduce((n, t) => n + t.minorFaults, 0),
  };
}

/** Dispatcher CPU per delivery, in µs. */
export const cpuUsPerDelivery = (run: DispatcherRun) => (run.cpuSeconds.dispatcher! / run.deliveries) * 1e6;

/**
 * The same over the second half of the run only; null when no poll came between half and three
 * quarters of the deliveries (a run too short for its polls).
 */
export const secondHalfCpuUsPerDelivery = (run: DispatcherRun): number | null =>
  run.secondHalf.deliveries > 0 ? (run.secondHalf.dispatcherCpuSeconds / run.secondHalf.deliveries) * 1e6 : null;

/** A figure in whole µs, or n/a. */
export const wholeUs = (us: number | null) => (us === null ? 'n/a' : us.toFixed(0));

function secondHalfOf(
  half: { unique: number; dispatcherCpu: number } | null,
  deliveries: number,
  dispatcherCpuAtEnd: number,
): DispatcherRun['secondHalf'] {
  if (!half) return { deliveries: 0, dispatcherCpuSeconds: 0 };
  return {
    deliveries: deliveries - half.unique,
    dispatcherCpuSeconds: +(dispatcherCpuAtEnd - half.dispatcherCpu).toFixed(2),
  };
}

/** The dispatchers' kernel share of their CPU, in whole percent. */
export const kernelShare = (run: DispatcherRun) =>
  Math.round((100 * run.dispatcherSystemSeconds) / run.cpuSeconds.dispatcher!);

/**
 * BENCH_BASELINE_ENV="K=V,K=V": variables of the baseline's dispatchers only, so that --compare of a
 * build with itself measures a setting (`BENCH_BASELINE_ENV=DELIVERY_LOG=off npm run bench -- --compare .`).
 * BENCH_CURRENT_ENV: the same for the current build's; both set alike measure the noise (A/A).
 */
const baselineEnv: Record<string, string> = variablesOf(process.env.BENCH_BASELINE_ENV);
const currentEnv: Record<string, string> = variablesOf(process.env.BENCH_CURRENT_ENV);

/** --compare DIR: fan-out 1 on 1 replica, alternating this build with DIR's, --rounds rounds each (3). */
export async function compareBuilds(bench: Bench, fo1: Shape, other: string): Promise<void> {
  const rounds = {
    current: [] as number[],
    baseline: [] as number[],
    cpuUs: { current: [] as number[], baseline: [] as number[] },
    secondHalfCpuUs: { current: [] as (number | null)[], baseline: [] as (number | null)[] },
  };
  const roundCount = Number(flags.rounds);
  if (!Number.isSafeInteger(roundCount) || roundCount < 1) throw new Error(`--rounds must be a whole number ≥ 1`);
  for (let round = 1; round <= roundCount; round++) {
    for (const which of ['current', 'baseline'] as const) {
      // --profile: a profile of the current build's first round.
      const profile =
        flags.profile && which === 'current' && round === 1 ? path.join(root, 'bench/results/profile') : undefined;
      const cwd = which === 'current' ? root : other;
      const env = which === 'baseline' ? baselineEnv : currentEnv;
      const { run } = await runDispatcher(bench, fo1, SIZE.events, 1, ` ${which} ${round}`, profile, cwd, env);
      rounds[which].push(run.deliveriesPerSec);
      rounds.cpuUs[which].push(cpuUsPerDelivery(run));
      rounds.secondHalfCpuUs[which].push(secondHalfCpuUsPerDelivery(run));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const secondHalfMedian = (xs: (number | null)[]) => (xs.includes(null) ? null : median(xs as number[]));
  const ratio = median(rounds.current) / median(rounds.baseline);
  results.compare = { baselineDir: other, baselineEnv, currentEnv, ...rounds, medianRatio: ratio };
  log(
    `compare (fan-out 1, 1 replica, median of ${roundCount}): current ${median(rounds.current).toFixed(0)} / baseline ${median(rounds.baseline).toFixed(0)} deliveries/s = ${ratio.toFixed(3)}; dispatcher CPU per delivery ${median(rounds.cpuUs.current).toFixed(0)} / ${median(rounds.cpuUs.baseline).toFixed(0)} µs (second half ${wholeUs(secondHalfMedian(rounds.secondHalfCpuUs.current))} / ${wholeUs(secondHalfMedian(rounds.secondHalfCpuUs.baseline))} µs)`,
  );
}

/**
 * (c) at fan-out 1 on 1, 2 and 3 replicas (the same load, and the CPU of each process), and at
 * fan-out 10 on 1 and 2. Returns the runs, and the events topic of fan-out 1 on 1 replica, which
 * the limits and the naive dispatcher read again.
 */
export async function endToEnd(
  bench: Bench,
  fo1: Shape,
  fo10: Shape,
): Promise<{ runs: DispatcherRun[]; fo1Events: string }> {
  const runs: DispatcherRun[] = [];
  let fo1Events = '';
  for (const [shape, count] of [
    [fo1, SIZE.events],
    [fo10, SIZE.fanout10Events],
  ] as const) {
    for (const replicas of shape.fanout === 1 ? [1, 2, 3] : [1, 2]) {
      const profile =
        flags.profile && shape.fanout === 1 && replicas === 1 ? path.join(root, 'bench/results/profile') : undefined;
      const { run, eventsTopic } = await runDispatcher(bench, shape, count, replicas, '', profile);
      if (replicas === 1 && shape.fanout === 1) fo1Events = eventsTopic;
      runs.push(run);
    }
  }
  results.dispatcher = runs;
  return { runs, fo1Events };
}

/** (d) The naive dispatcher (one event, one lookup, one request at a time) on a slice of the fan-out 1 events. */
export async function runNaive(bench: Bench, fo1: Shape, fo1Events: string, events: number, group: string) {
  await ask(bench.rx, { cmd: 'reset' }, 'reset');
  const naive = spawnTs('bench/naive.ts', [
    bench.stack.KAFKA_BROKERS!,
    fo1Events,
    group,
    bench.stack.REDIS_URL!,
    fo1.redisPrefix,
    String(events),
  ]);
  return nextMessage<{ deliveriesPerSec: number; deliveries: number }>(naive);
}

/**
 * (g) c and d again against an endpoint that takes ENDPOINT_LATENCY_MS to answer, as real
 * endpoints do; on loopback a round trip is a fraction of a millisecond, which flatters (d).
 */
export async function withEndpointLatency(bench: Bench, fo1: Shape, fo1Events: string) {
  await ask(bench.rx, { cmd: 'delay', delayMs: ENDPOINT_LATENCY_MS }, 'delay');
  const cSlow = (await runDispatcher(bench, fo1, SIZE.latencyEvents, 1, ` @ ${ENDPOINT_LATENCY_MS} ms`)).run;
  const dSlow = await runNaive(bench, fo1, fo1Events, SIZE.latencyNaiveEvents, `${bench.base}.g`);
  await ask(bench.rx, { cmd: 'delay', delayMs: 0 }, 'delay');
  results.endpointLatency = { latencyMs: ENDPOINT_LATENCY_MS, dispatcher: cSlow, naive: dSlow };
  log(`(g) naive dispatcher @ ${ENDPOINT_LATENCY_MS} ms: ${dSlow.deliveriesPerSec.toFixed(1)} deliveries/s`);
  return { cSlow, dSlow };
}
