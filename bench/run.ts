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
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { type Admin, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import { deliveryBody, eventPayload } from '../src/delivery/payload.js';
import { sampleEvent, sampleSubscription } from '../src/demo/sample-data.js';
import { activate } from '../src/subscriptions/subscription.js';

const root = path.resolve(import.meta.dirname, '..');
const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    events: { type: 'string' },
    compare: { type: 'string' },
  },
});
const SMOKE = flags.smoke;

/** Every size in one place; the smoke run shrinks them. */
const SIZE = SMOKE
  ? {
      events: 2000,
      fanout10Events: 300,
      subscriptions: 100,
      naiveEvents: 100,
      latencySeconds: 3,
      fixedRate: 200,
      backlogEvents: 3000,
      backlogSeconds: 4,
      latencyEvents: 500,
      latencyNaiveEvents: 20,
    }
  : {
      events: 100_000,
      fanout10Events: 100_000,
      subscriptions: 1000,
      naiveEvents: 2000,
      latencySeconds: 15,
      fixedRate: 1000,
      backlogEvents: 100_000,
      backlogSeconds: 20,
      latencyEvents: 20_000,
      latencyNaiveEvents: 200,
    };
if (flags.events) {
  // Ad-hoc runs (profiling): scale the event counts, keep the rest.
  const n = Number(flags.events);
  Object.assign(SIZE, { events: n, fanout10Events: Math.ceil(n / 10), backlogEvents: n });
}
const SECRET = 'bench-secret';
const RECEIVER_PORTS = 20;
/** How long the receiver takes to answer in (g); real endpoints take tens to hundreds of ms. */
const ENDPOINT_LATENCY_MS = 20;
const DISPATCHER_ENV = {
  MAX_IN_FLIGHT_DELIVERIES: '1000',
  MAX_CONNECTIONS_PER_ORIGIN: '32',
  ENDPOINT_MAX_CONCURRENCY: '32',
  PARTITIONS_CONSUMED_CONCURRENTLY: '4',
};
// The dispatcher's effective HTTP concurrency: per-origin cap × origins, within the global bound.
const HTTP_CONCURRENCY = Math.min(1000, 32 * RECEIVER_PORTS);

const now = () => performance.timeOrigin + performance.now();
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const results: Record<string, unknown> = {
  machine: { cores: (await import('node:os')).cpus().length, node: process.version },
  smoke: SMOKE,
};
const problems: string[] = [];

// ---------- processes ----------

function spawnTs(file: string, args: string[] = [], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(root, file), ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

function nextMessage<T>(child: ChildProcess, cmd?: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { cmd?: string }) => {
      if (cmd && m.cmd !== cmd) return;
      child.off('message', onMsg);
      child.off('close', onClose);
      resolve(m as T);
    };
    // 'close', not 'exit': a child's last messages can still be on their way when 'exit' fires.
    const onClose = (code: number) => reject(new Error(`child exited (${code}) before sending ${cmd ?? 'a message'}`));
    child.on('message', onMsg);
    child.once('close', onClose);
  });
}

async function ask<T>(child: ChildProcess, msg: object, cmd: string): Promise<T> {
  const reply = nextMessage<T>(child, cmd);
  child.send(msg);
  return reply;
}

interface Dispatcher {
  proc: ChildProcess;
  port: number;
  peakRssMb(): number;
  rssMb(): number;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
  } catch {
    return 0;
  }
}

/** The processes sharing the machine during a run, to show where CPU goes. */
function machineProcesses(dispatchers: Dispatcher[], rx: ChildProcess): Record<string, number[]> {
  const pidFile = (name: string) => {
    try {
      return [Number(fs.readFileSync(path.join(root, `.stack/run/${name}.pid`), 'utf8'))];
    } catch {
      return [];
    }
  };
  const redis = spawnSync('pgrep', ['-x', 'redis-server'], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n')
    .filter(Boolean)
    .map(Number);
  const kafka = spawnSync('pgrep', ['-f', 'kafka.Kafka'], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n')
    .filter(Boolean)
    .map(Number);
  return {
    dispatcher: dispatchers.map((d) => d.proc.pid!),
    receiver: [rx.pid!],
    'producer (bench)': [process.pid],
    kafka: kafka.length ? kafka : pidFile('kafka'),
    redis,
  };
}

function cpuOf(procs: Record<string, number[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(procs).map(([k, pids]) => [k, pids.reduce((n, p) => n + cpuSeconds(p), 0)]));
}

function procStatusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** The Node flags a build runs with: those of its `npm start` ("node FLAGS dist/main.js"), as the image does. */
function startFlags(cwd: string): string[] {
  const start = (JSON.parse(fs.readFileSync(path.join(cwd, 'package.json'), 'utf8')) as { scripts: { start: string } })
    .scripts.start;
  const flags = /^node\s+(.*?)\s*dist\/main\.js$/.exec(start)?.[1];
  return flags ? flags.split(/\s+/) : [];
}

async function startDispatcher(env: Record<string, string>, profileDir?: string, cwd = root): Promise<Dispatcher> {
  const profiling = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const args = [...startFlags(cwd), ...profiling, 'dist/main.js'];
  const proc = spawn(process.execPath, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let port = 0;
  let buf = '';
  const ready = new Promise<void>((resolve, reject) => {
    proc.once('exit', (c) => reject(new Error(`dispatcher exited (${c})`)));
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      for (;;) {
        const i = buf.indexOf('\n');
        if (i < 0) break;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.includes('"level":"error"')) log(`dispatcher: ${line.slice(0, 300)}`);
        if (line.includes('"msg":"starting"')) port = JSON.parse(line).metricsPort;
        if (line.includes('"msg":"dispatcher running"')) resolve();
      }
    });
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    ready,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('dispatcher not running after 120 s')), 120_000);
    }),
  ]);
  clearTimeout(timer);
  return {
    proc,
    port,
    peakRssMb: () => procStatusMb(proc.pid!, 'VmHWM'),
    rssMb: () => procStatusMb(proc.pid!, 'VmRSS'),
  };
}

async function stopDispatcher(d: Dispatcher): Promise<void> {
  if (d.proc.exitCode !== null) return;
  const exited = new Promise((r) => d.proc.once('exit', r));
  d.proc.kill('SIGTERM');
  await exited;
}

async function metric(d: Dispatcher, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${d.port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

// ---------- Kafka and data ----------

interface Shape {
  name: string;
  fanout: number;
  projects: number;
  topics: {
    events: string;
    subscriptions: string;
    results: string;
    dlq: string;
    deliveriesDlq: string;
    status: string;
    retryPrefix: string;
  };
  redisPrefix: string;
}

function shapeOf(name: string, fanout: number, base: string): Shape {
  const b = `${base}.${name}`;
  return {
    name,
    fanout,
    projects: SIZE.subscriptions / fanout,
    topics: {
      events: `${b}.events`,
      subscriptions: `${b}.webhooks`,
      results: `${b}.results`,
      dlq: `${b}.events.dlq`,
      deliveriesDlq: `${b}.deliveries.dlq`,
      status: `${b}.status`,
      retryPrefix: `${b}.retries`,
    },
    redisPrefix: `bench:${randomBytes(4).toString('hex')}:`,
  };
}

function envOf(shape: Shape, stack: Record<string, string>, group: string): Record<string, string> {
  const t = shape.topics;
  return {
    ...stack,
    ...DISPATCHER_ENV,
    EVENTS_TOPIC: t.events,
    SUBSCRIPTIONS_TOPIC: t.subscriptions,
    RESULTS_TOPIC: t.results,
    DLQ_TOPIC: t.dlq,
    DELIVERY_DLQ_TOPIC: t.deliveriesDlq,
    STATUS_TOPIC: t.status,
    RETRY_TOPIC_PREFIX: t.retryPrefix,
    CONSUMER_GROUP: group,
    REDIS_KEY_PREFIX: shape.redisPrefix,
    METRICS_PORT: '0',
    METRICS_HOST: '127.0.0.1',
    DELIVERY_ALLOWLIST: '127.0.0.1/32',
    TOPIC_PARTITIONS: '12',
    LOG_LEVEL: 'info', // lifecycle lines only; the harness waits for them
  };
}

/** Topic creation, retried: a broker that has just started may not know a new topic's leaders yet. */
async function createTopicsRetrying(
  admin: Admin,
  topics: Parameters<Admin['createTopics']>[0]['topics'],
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.createTopics({ waitForLeaders: true, topics });
      return;
    } catch (err) {
      const existing = new Set(await admin.listTopics());
      if (topics.every((t) => existing.has(t.topic))) return;
      if (attempt >= 10) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

async function createTopics(admin: Admin, shape: Shape): Promise<void> {
  const { retryPrefix: _, ...t } = shape.topics;
  await createTopicsRetrying(
    admin,
    Object.entries(t).map(([k, topic]) => ({
      topic,
      numPartitions: 12,
      replicationFactor: 1,
      configEntries: k === 'subscriptions' ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
    })),
  );
}

async function putSubscriptions(producer: Producer, shape: Shape, ports: number[]): Promise<void> {
  const messages = [];
  for (let i = 0; i < SIZE.subscriptions; i++) {
    const project = `proj_${i % shape.projects}`;
    const sub = sampleSubscription({
      id: `wh_${shape.name}_${i}`,
      url: `http://127.0.0.1:${ports[i % ports.length]}/hook/${i}`,
      secret: SECRET,
      metadata: { events: ['TODO_CREATED', 'TODO_MOVED', 'COMMENT_CREATED'], projectIds: [project] },
    });
    messages.push({ key: sub.id, value: JSON.stringify(sub) });
  }
  for (let i = 0; i < messages.length; i += 500)
    await producer.send({ topic: shape.topics.subscriptions, messages: messages.slice(i, i + 500) });
}

// One event JSON, re-used with its ids and send time swapped in (the realistic 2-3 KB body).
const template = JSON.stringify({
  ...sampleEvent({ eventId: 'EVT_ID', projectId: 'PROJ_ID' }),
  currentValue: { ...sampleEvent().currentValue, benchSentAt: 0 },
});
function eventJson(id: string, project: string): string {
  return template
    .replace('EVT_ID', id)
    .replaceAll('PROJ_ID', project)
    .replace('"benchSentAt":0', `"benchSentAt":${now().toFixed(3)}`);
}

/** Produces `count` events as fast as the producer goes; returns events/s. */
async function produceAll(producer: Producer, shape: Shape, count: number, tag: string): Promise<number> {
  const t0 = now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i += 300) {
    const messages = [];
    for (let j = i; j < Math.min(count, i + 300); j++)
      messages.push({ key: `todo_${j}`, value: eventJson(`${tag}_${j}`, `proj_${j % shape.projects}`) });
    inflight.push(producer.send({ topic: shape.topics.events, acks: 1, messages }));
    if (inflight.length >= 8) await inflight.shift();
  }
  await Promise.all(inflight);
  return count / ((now() - t0) / 1000);
}

/** Produces at a fixed rate for `seconds`, in 10 ms slices. */
async function producePaced(
  producer: Producer,
  shape: Shape,
  topic: string,
  rate: number,
  seconds: number,
  tag: string,
): Promise<number> {
  const total = Math.round(rate * seconds);
  const t0 = now();
  let sent = 0;
  const pending: Promise<unknown>[] = [];
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - t0) / 1000) * rate) + 1);
    if (due > sent) {
      const messages = [];
      for (; sent < due; sent++)
        messages.push({ key: `todo_${sent}`, value: eventJson(`${tag}_${sent}`, `proj_${sent % shape.projects}`) });
      pending.push(producer.send({ topic, acks: 1, messages }));
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(pending);
  return total;
}

interface RxStats {
  total: number;
  unique: number;
  firstAt: number;
  lastAt: number;
  sampled: number;
  badSignatures: number;
  latency: { n: number; p50: number; p99: number; max: number };
}

async function waitForDeliveries(
  rx: ChildProcess,
  expected: number,
  timeoutMs: number,
  onTick?: () => Promise<void>,
): Promise<RxStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await ask<RxStats>(rx, { cmd: 'stats' }, 'stats');
    if (s.unique >= expected || Date.now() > deadline) return s;
    await onTick?.();
    await new Promise((r) => setTimeout(r, 250));
  }
}

function check(name: string, s: RxStats, expected: number, signatures = true): void {
  const missing = expected - s.unique;
  const duplicates = s.total - s.unique;
  if (missing > 0) problems.push(`${name}: LOST ${missing} of ${expected} deliveries`);
  if (signatures && s.badSignatures > 0)
    problems.push(`${name}: ${s.badSignatures} of ${s.sampled} sampled signatures failed`);
  if (duplicates > 0) log(`${name}: ${duplicates} duplicate deliveries (at-least-once)`);
}

// ---------- the run ----------

async function main(): Promise<void> {
  log(SMOKE ? 'smoke run' : 'full run');
  if (spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' }).status !== 0) throw new Error('build failed');
  const up = spawnSync(process.execPath, [path.join(root, 'stack/stack.mjs'), 'up'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (up.status !== 0) throw new Error('the local stack did not start');
  const stack = Object.fromEntries(
    up.stdout
      .trim()
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;

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
  const cleanup: (() => Promise<unknown>)[] = [];

  try {
    const fo1 = shapeOf('fo1', 1, base);
    const fo10 = shapeOf('fo10', 10, base);
    for (const s of [fo1, fo10]) {
      await createTopics(admin, s);
      await putSubscriptions(producer, s, ports);
    }
    cleanup.push(async () => {
      const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${base}.`));
      await admin.deleteTopics({ topics: mine });
      const redis = new Redis(stack.REDIS_URL!);
      for (const s of [fo1, fo10]) {
        const keys = await redis.keys(`${s.redisPrefix}*`);
        for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
      }
      redis.disconnect();
    });

    // Warm the table once per shape (a dispatcher that loads it and leaves).
    for (const s of [fo1, fo10]) await stopDispatcher(await startDispatcher(envOf(s, stack, `${base}.warm.${s.name}`)));

    // (c) The dispatcher, end to end. Replicas join first, then the events are produced.
    /** One end-to-end run on an events topic of its own, so no run re-reads another's events. */
    const runDispatcher = async (
      shape: Shape,
      count: number,
      replicas: number,
      label: string,
      profile?: string,
      cwd = root,
    ) => {
      const name = `${shape.name} × ${replicas} replica${replicas > 1 ? 's' : ''}${label}`;
      await ask(rx, { cmd: 'reset' }, 'reset');
      const id = `${shape.name}.${replicas}${label.replace(/\W+/g, '')}`;
      const group = `${base}.c.${id}`;
      const runShape = { ...shape, topics: { ...shape.topics, events: `${base}.c.${id}.events` } };
      await createTopicsRetrying(admin, [{ topic: runShape.topics.events, numPartitions: 12, replicationFactor: 1 }]);
      const ds = await Promise.all(
        Array.from({ length: replicas }, () => startDispatcher(envOf(runShape, stack, group), profile, cwd)),
      );
      await waitJoined(admin, group, replicas);
      const procs = machineProcesses(ds, rx);
      const cpuBefore = cpuOf(procs);
      const eachBefore = ds.map((d) => cpuSeconds(d.proc.pid!));
      const produceRate = await produceAll(producer, runShape, count, id);
      const expected = count * shape.fanout;
      let peak = 0;
      const s = await waitForDeliveries(rx, expected, 30 * 60_000, async () => {
        peak = Math.max(peak, ...ds.map((d) => d.rssMb()));
      });
      const peakRss = Math.max(peak, ...ds.map((d) => d.peakRssMb()));
      const cpuAfter = cpuOf(procs);
      const eachCpu = ds.map((d, i) => +(cpuSeconds(d.proc.pid!) - eachBefore[i]!).toFixed(2));
      let retried = 0;
      let saturated = 0;
      for (const x of ds) {
        retried += await metric(x, 'blue_webhooks_retries_scheduled_total');
        saturated += await metric(x, 'blue_webhooks_endpoint_saturated_total');
      }
      const cpu = Object.fromEntries(Object.keys(cpuAfter).map((k) => [k, +(cpuAfter[k]! - cpuBefore[k]!).toFixed(2)]));
      await Promise.all(ds.map(stopDispatcher));
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
      return {
        run: {
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
          retriesScheduled: retried,
          endpointSaturated: saturated,
        },
        eventsTopic: runShape.topics.events,
      };
    };
    if (flags.compare) {
      const other = path.resolve(flags.compare);
      const rounds: { current: number[]; baseline: number[]; cpuUs: { current: number[]; baseline: number[] } } = {
        current: [],
        baseline: [],
        cpuUs: { current: [], baseline: [] },
      };
      for (let round = 1; round <= 3; round++) {
        for (const which of ['current', 'baseline'] as const) {
          const profile =
            flags.profile && which === 'current' && round === 1 ? path.join(root, 'bench/results/profile') : undefined;
          const { run } = await runDispatcher(
            fo1,
            SIZE.events,
            1,
            ` ${which} ${round}`,
            profile,
            which === 'current' ? root : other,
          );
          rounds[which].push(run.deliveriesPerSec);
          rounds.cpuUs[which].push((run.cpuSeconds.dispatcher! / run.deliveries) * 1e6);
        }
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
      const ratio = median(rounds.current) / median(rounds.baseline);
      results.compare = { baselineDir: other, ...rounds, medianRatio: ratio };
      log(
        `compare (fan-out 1, 1 replica, median of 3): current ${median(rounds.current).toFixed(0)} / baseline ${median(rounds.baseline).toFixed(0)} deliveries/s = ${ratio.toFixed(3)}; dispatcher CPU per delivery ${median(rounds.cpuUs.current).toFixed(0)} / ${median(rounds.cpuUs.baseline).toFixed(0)} µs`,
      );
      fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
      fs.writeFileSync(
        path.join(root, 'bench/results/compare.json'),
        `${JSON.stringify({ ...results, problems }, null, 2)}\n`,
      );
      if (problems.length > 0) process.exitCode = 1;
      return;
    }

    const runs: Record<string, unknown>[] = [];
    let fo1Events = '';
    for (const [shape, count] of [
      [fo1, SIZE.events],
      [fo10, SIZE.fanout10Events],
    ] as const) {
      // Fan-out 1 also with 3 replicas: the same load on 1, 2 and 3 processes, and the CPU of each.
      for (const replicas of shape.fanout === 1 ? [1, 2, 3] : [1, 2]) {
        const profile =
          flags.profile && shape.fanout === 1 && replicas === 1 ? path.join(root, 'bench/results/profile') : undefined;
        const { run, eventsTopic } = await runDispatcher(shape, count, replicas, '', profile);
        if (replicas === 1 && shape.fanout === 1) fo1Events = eventsTopic;
        runs.push(run);
      }
    }
    results.dispatcher = runs;

    // (a) The consume limit on the fan-out 1 topic (which now holds at least SIZE.events events).
    const consume = spawnTs('bench/consume-limit.ts', [
      stack.KAFKA_BROKERS!,
      fo1Events,
      `${base}.a`,
      String(SIZE.events),
      'throughput',
    ]);
    const a = await nextMessage<{ eventsPerSec: number }>(consume, 'done');
    results.consumeLimit = a;
    log(`(a) consume limit: ${a.eventsPerSec.toFixed(0)} events/s`);
    // (a') The same read with @platformatic/kafka, the other client worth a port.
    const platformatic = await nextMessage<{ eventsPerSec: number }>(
      spawnTs('bench/consume-limit-platformatic.ts', [
        stack.KAFKA_BROKERS!,
        fo1Events,
        `${base}.a2`,
        String(SIZE.events),
      ]),
      'done',
    );
    results.consumeLimitPlatformatic = platformatic;
    log(
      `(a') consume limit, @platformatic/kafka: ${platformatic.eventsPerSec.toFixed(0)} events/s (${(platformatic.eventsPerSec / a.eventsPerSec).toFixed(2)} × kafkajs)`,
    );

    // (b) The HTTP limit: the same signed bodies, the same receiver, the same concurrency.
    const bodies = Array.from({ length: 50 }, (_, i) => {
      const e = JSON.parse(eventJson(`http_${i}`, 'proj_0'));
      return deliveryBody(
        eventPayload({ ...e, occurredAtMs: 0 }),
        activate(sampleSubscription({ secret: SECRET })).webhookJson,
      );
    });
    const httpJob = (count: number, rate: number) => ({
      ports,
      bodies,
      secret: SECRET,
      concurrency: HTTP_CONCURRENCY,
      connectionsPerOrigin: 32,
      count,
      rate,
    });
    const runHttp = async (count: number, rate: number) => {
      const p = spawnTs('bench/http-limit.ts');
      await nextMessage(p, 'ready');
      const reply = nextMessage<{
        requestsPerSec: number;
        cpuUsPerRequest: number;
        p50: number;
        p99: number;
        max: number;
      }>(p);
      p.send(httpJob(count, rate));
      return reply;
    };
    await ask(rx, { cmd: 'reset' }, 'reset');
    const b = await runHttp(SIZE.events, 0);
    results.httpLimit = b;
    log(
      `(b) HTTP limit: ${b.requestsPerSec.toFixed(0)} requests/s at concurrency ${HTTP_CONCURRENCY}; client CPU ${b.cpuUsPerRequest.toFixed(0)} µs per request`,
    );

    // (d) The naive dispatcher, on a slice of the fan-out 1 events.
    const runNaive = async (events: number, group: string) => {
      await ask(rx, { cmd: 'reset' }, 'reset');
      const naive = spawnTs('bench/naive.ts', [
        stack.KAFKA_BROKERS!,
        fo1Events,
        group,
        stack.REDIS_URL!,
        fo1.redisPrefix,
        String(events),
      ]);
      return nextMessage<{ deliveriesPerSec: number; deliveries: number }>(naive);
    };
    const d = await runNaive(SIZE.naiveEvents, `${base}.d`);
    results.naive = d;
    log(`(d) naive dispatcher: ${d.deliveriesPerSec.toFixed(0)} deliveries/s`);

    // (g) c and d again against an endpoint that takes ENDPOINT_LATENCY_MS to answer, as real
    // endpoints do; on loopback a round trip is a fraction of a millisecond, which flatters (d).
    await ask(rx, { cmd: 'delay', delayMs: ENDPOINT_LATENCY_MS }, 'delay');
    const cSlow = (await runDispatcher(fo1, SIZE.latencyEvents, 1, ` @ ${ENDPOINT_LATENCY_MS} ms`)).run;
    const dSlow = await runNaive(SIZE.latencyNaiveEvents, `${base}.g`);
    await ask(rx, { cmd: 'delay', delayMs: 0 }, 'delay');
    results.endpointLatency = { latencyMs: ENDPOINT_LATENCY_MS, dispatcher: cSlow, naive: dSlow };
    log(`(g) naive dispatcher @ ${ENDPOINT_LATENCY_MS} ms: ${dSlow.deliveriesPerSec.toFixed(1)} deliveries/s`);

    // (e) Latency at a fixed offered rate and near saturation, with raw Kafka and HTTP alongside.
    const fo1Single = runs[0] as { deliveriesPerSec: number };
    const latencyAt = async (rate: number, label: string) => {
      await ask(rx, { cmd: 'reset' }, 'reset');
      const group = `${base}.e.${label}`;
      const lt = shapeOf(`lat${label}`, 1, base);
      await createTopics(admin, lt);
      await putSubscriptions(producer, lt, ports);
      const dsp = await startDispatcher(envOf(lt, stack, group));
      await waitJoined(admin, group, 1);
      // Warm up (connections, JIT, metadata), then measure the steady state.
      const warm = await producePaced(producer, lt, lt.topics.events, rate, 2, `warm${label}`);
      await waitForDeliveries(rx, warm, 60_000);
      await ask(rx, { cmd: 'reset' }, 'reset');
      const total = await producePaced(producer, lt, lt.topics.events, rate, SIZE.latencySeconds, `lat${label}`);
      const s = await waitForDeliveries(rx, total, 120_000);
      const text = await (await fetch(`http://127.0.0.1:${dsp.port}/metrics`)).text();
      fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
      fs.writeFileSync(path.join(root, `bench/results/metrics-latency-${label}.txt`), text);
      await stopDispatcher(dsp);
      check(`latency at ${rate}/s`, s, total);
      return { offeredEventsPerSec: rate, ...s.latency };
    };
    const fixed = await latencyAt(SIZE.fixedRate, 'fixed');
    const nearRate = Math.round(fo1Single.deliveriesPerSec * 0.8);
    const near = await latencyAt(nearRate, 'near');
    // Raw Kafka produce→consume at the fixed rate, and raw HTTP round trips at the fixed rate.
    const rawTopic = `${base}.raw`;
    await createTopicsRetrying(admin, [{ topic: rawTopic, numPartitions: 12, replicationFactor: 1 }]);
    const rawConsumer = spawnTs('bench/consume-limit.ts', [
      stack.KAFKA_BROKERS!,
      rawTopic,
      `${base}.raw`,
      String(Math.round(SIZE.fixedRate * SIZE.latencySeconds)),
      'latency',
    ]);
    await nextMessage(rawConsumer, 'ready');
    await waitJoined(admin, `${base}.raw`, 1);
    await producePaced(producer, fo1, rawTopic, SIZE.fixedRate, SIZE.latencySeconds, 'raw');
    const rawKafka = await nextMessage<{ p50: number; p99: number; max: number }>(rawConsumer, 'done');
    const rawHttp = await runHttp(Math.round(SIZE.fixedRate * SIZE.latencySeconds), SIZE.fixedRate);
    results.latency = { fixed, nearSaturation: near, rawKafka, rawHttp };
    log(
      `(e) latency at ${SIZE.fixedRate}/s: p50 ${fixed.p50.toFixed(1)} ms, p99 ${fixed.p99.toFixed(1)} ms; raw Kafka p99 ${rawKafka.p99.toFixed(1)} ms, raw HTTP p99 ${rawHttp.p99.toFixed(1)} ms`,
    );

    // (f) Memory while a backlog waits behind a slow receiver.
    await ask(rx, { cmd: 'reset' }, 'reset');
    await ask(rx, { cmd: 'delay', delayMs: 1000 }, 'delay');
    const bl = shapeOf('backlog', 1, base);
    await createTopics(admin, bl);
    await putSubscriptions(producer, bl, ports);
    await produceAll(producer, bl, SIZE.backlogEvents, 'backlog');
    const dsp = await startDispatcher(envOf(bl, stack, `${base}.f`));
    const samples: { t: number; rssMb: number; lag: number; inFlight: number }[] = [];
    const t0 = Date.now();
    while (Date.now() - t0 < SIZE.backlogSeconds * 1000) {
      await new Promise((r) => setTimeout(r, 500));
      samples.push({
        t: (Date.now() - t0) / 1000,
        rssMb: dsp.rssMb(),
        lag: await metric(dsp, 'blue_webhooks_consumer_lag'),
        inFlight: await metric(dsp, 'blue_webhooks_deliveries_in_flight'),
      });
    }
    const backlogPeak = dsp.peakRssMb();
    await stopDispatcher(dsp);
    await ask(rx, { cmd: 'delay', delayMs: 0 }, 'delay');
    const third = Math.max(1, Math.floor(samples.length / 3));
    const early = Math.max(...samples.slice(third, 2 * third).map((s) => s.rssMb)); // past start-up
    const late = Math.max(...samples.slice(-third).map((s) => s.rssMb));
    results.memory = {
      peakRssMbBusiest: Math.max(...runs.map((r) => r.peakRssMb as number)),
      backlog: {
        pendingEvents: SIZE.backlogEvents,
        minLagSeen: Math.min(...samples.map((s) => s.lag)),
        maxInFlight: Math.max(...samples.map((s) => s.inFlight)),
        peakRssMb: backlogPeak,
        rssFirstThirdMb: early,
        rssLastThirdMb: late,
        samples,
      },
    };
    log(
      `(f) backlog of ${SIZE.backlogEvents}: RSS ${early.toFixed(0)} MB early, ${late.toFixed(0)} MB late, peak ${backlogPeak.toFixed(0)} MB`,
    );

    // Ratios and targets.
    const c1 = fo1Single.deliveriesPerSec;
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
        backlogPeak <= Math.max(...runs.map((r) => r.peakRssMb as number)) * 1.15,
    };
    printTable(results, runs);
  } finally {
    rx.kill();
    await producer.disconnect();
    for (const c of cleanup) await c().catch(() => {});
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

async function waitJoined(admin: Admin, groupId: string, members: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const { groups } = await admin.describeGroups([groupId]);
    if (groups[0]?.state === 'Stable' && groups[0].members.length === members) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`group ${groupId} did not settle with ${members} members`);
}

function printTable(r: Record<string, unknown>, runs: Record<string, unknown>[]): void {
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
  for (const x of runs) {
    const cpu = (x.cpuSeconds as Record<string, number>).dispatcher!;
    const each = x.dispatcherCpuSecondsEach as number[];
    rows.push([
      `(c) ${x.name}`,
      `${(x.deliveriesPerSec as number).toFixed(0)} deliveries/s, peak RSS ${(x.peakRssMb as number).toFixed(0)} MB, dispatcher CPU ${((cpu / (x.deliveries as number)) * 1e6).toFixed(0)} µs/delivery${each.length > 1 ? ` (CPU s each: ${each.join(', ')})` : ''}`,
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
