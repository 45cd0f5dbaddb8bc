// The harness every measure of `npm run bench` shares: its options and sizes, the processes it
// starts (dispatchers, receiver, limit probes) and how their CPU and memory are read, and the
// data it produces (topics, subscriptions, events) and checks (deliveries, signatures).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Admin, Producer } from 'kafkajs';
import { sampleEvent, sampleSubscription } from '../src/demo/sample-data.js';

import { ask, nextMessage } from './ipc.js';

export { ask, nextMessage };

export const root = path.resolve(import.meta.dirname, '..');
export const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    events: { type: 'string' },
    compare: { type: 'string' },
    scaling: { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
    rows: { type: 'string' },
    e2e: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
  },
});
export const SMOKE = flags.smoke;

/** Every size in one place; the smoke run shrinks them. */
export const SIZE = SMOKE
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
      scaling: { rate: 100, seconds: 6, upAt: 2, downAt: 4 },
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
      // The load the issue measured from outside: 300 events/s, fan-out 2, replicas added after 3 s.
      scaling: { rate: 300, seconds: 14, upAt: 3, downAt: 8 },
    };
if (flags.events) {
  // Ad-hoc runs (profiling): scale the event counts, keep the rest.
  const n = Number(flags.events);
  Object.assign(SIZE, { events: n, fanout10Events: Math.ceil(n / 10), backlogEvents: n });
}
/** "K=V,K=V" (BENCH_DISPATCHER_ENV, BENCH_BASELINE_ENV) as variables; empty when unset. */
export function variablesOf(list: string | undefined): Record<string, string> {
  return Object.fromEntries(
    (list ?? '')
      .split(',')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

export const SECRET = 'bench-secret';
export const RECEIVER_PORTS = 20;
/** How long the receiver takes to answer in (g); real endpoints take tens to hundreds of ms. */
export const ENDPOINT_LATENCY_MS = 20;
export const DISPATCHER_ENV = {
  MAX_IN_FLIGHT_DELIVERIES: '1000',
  MAX_CONNECTIONS_PER_ORIGIN: '32',
  ENDPOINT_MAX_CONCURRENCY: '32',
  PARTITIONS_CONSUMED_CONCURRENTLY: '4',
};
// The dispatcher's effective HTTP concurrency: per-origin cap × origins, within the global bound.
export const HTTP_CONCURRENCY = Math.min(1000, 32 * RECEIVER_PORTS);

export const now = () => performance.timeOrigin + performance.now();
export const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
export const results: Record<string, unknown> = {
  machine: { cores: (await import('node:os')).cpus().length, node: process.version },
  smoke: SMOKE,
};
export const problems: string[] = [];

// ---------- processes ----------

export function spawnTs(file: string, args: string[] = [], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(root, file), ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

export interface Dispatcher {
  proc: ChildProcess;
  port: number;
  peakRssMb(): number;
  rssMb(): number;
}

/** What a process has used so far: CPU seconds in user and kernel mode, and minor page faults. */
export function procTimes(pid: number): { userSeconds: number; systemSeconds: number; minorFaults: number } {
  try {
    // Fields after the command name, from the state (field 3 of proc(5)): minflt is 10, utime 14, stime 15.
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return {
      userSeconds: Number(fields[11]) / 100, // clock ticks, 100/s
      systemSeconds: Number(fields[12]) / 100,
      minorFaults: Number(fields[7]),
    };
  } catch {
    return { userSeconds: 0, systemSeconds: 0, minorFaults: 0 };
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const times = procTimes(pid);
  return times.userSeconds + times.systemSeconds;
}

/** The processes sharing the machine during a run, to show where CPU goes. */
export function machineProcesses(dispatchers: Dispatcher[], rx: ChildProcess): Record<string, number[]> {
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

export function cpuOf(procs: Record<string, number[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(procs).map(([k, pids]) => [k, pids.reduce((n, p) => n + cpuSeconds(p), 0)]));
}

export function procStatusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** The Node flags a build runs with: those of its `npm start` ("node FLAGS dist/main.js"), as the image does. */
export function startFlags(cwd: string): string[] {
  const start = (JSON.parse(fs.readFileSync(path.join(cwd, 'package.json'), 'utf8')) as { scripts: { start: string } })
    .scripts.start;
  const flags = /^node\s+(.*?)\s*dist\/main\.js$/.exec(start)?.[1];
  return flags ? flags.split(/\s+/) : [];
}

export async function startDispatcher(
  env: Record<string, string>,
  profileDir?: string,
  cwd = root,
): Promise<Dispatcher> {
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

export async function stopDispatcher(d: Dispatcher): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return; // exited, or killed
  const exited = new Promise((r) => d.proc.once('exit', r));
  d.proc.kill('SIGTERM');
  await exited;
}

export async function metric(d: Dispatcher, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${d.port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

// ---------- Kafka and data ----------

export interface Shape {
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

export function shapeOf(name: string, fanout: number, base: string): Shape {
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

export function envOf(shape: Shape, stack: Record<string, string>, group: string): Record<string, string> {
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
export async function createTopicsRetrying(
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

export async function createTopics(admin: Admin, shape: Shape): Promise<void> {
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

export async function putSubscriptions(producer: Producer, shape: Shape, ports: number[]): Promise<void> {
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
export const template = JSON.stringify({
  ...sampleEvent({ eventId: 'EVT_ID', projectId: 'PROJ_ID' }),
  currentValue: { ...sampleEvent().currentValue, benchSentAt: 0 },
});
export function eventJson(id: string, project: string): string {
  return template
    .replace('EVT_ID', id)
    .replaceAll('PROJ_ID', project)
    .replace('"benchSentAt":0', `"benchSentAt":${now().toFixed(3)}`);
}

/** Produces `count` events as fast as the producer goes; returns events/s. */
export async function produceAll(producer: Producer, shape: Shape, count: number, tag: string): Promise<number> {
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
export async function producePaced(
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

export interface RxStats {
  total: number;
  unique: number;
  firstAt: number;
  lastAt: number;
  sampled: number;
  badSignatures: number;
  latency: { n: number; p50: number; p99: number; max: number };
}

export async function waitForDeliveries(
  rx: ChildProcess,
  expected: number,
  timeoutMs: number,
  onTick?: (stats: RxStats) => Promise<void>,
): Promise<RxStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await ask<RxStats>(rx, { cmd: 'stats' }, 'stats');
    if (s.unique >= expected || Date.now() > deadline) return s;
    await onTick?.(s);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function check(name: string, s: RxStats, expected: number, signatures = true): void {
  const missing = expected - s.unique;
  const duplicates = s.total - s.unique;
  if (missing > 0) problems.push(`${name}: LOST ${missing} of ${expected} deliveries`);
  if (signatures && s.badSignatures > 0)
    problems.push(`${name}: ${s.badSignatures} of ${s.sampled} sampled signatures failed`);
  if (duplicates > 0) log(`${name}: ${duplicates} duplicate deliveries (at-least-once)`);
}

export async function waitJoined(admin: Admin, groupId: string, members: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const { groups } = await admin.describeGroups([groupId]);
    if (groups[0]?.state === 'Stable' && groups[0].members.length === members) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`group ${groupId} did not settle with ${members} members`);
}

/** What every measure is given: the stack, the Kafka clients and the receiver of this run. */
export interface Bench {
  stack: Record<string, string>;
  admin: Admin;
  producer: Producer;
  /** Prefix of every topic and group of this run. */
  base: string;
  /** The receiver process, and the loopback ports it listens on. */
  rx: ChildProcess;
  ports: number[];
}
