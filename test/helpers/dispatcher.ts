import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { type BlueEvent, eventToAvro } from '../../src/codec/event.js';
import { readSchema } from '../../src/codec/registry.js';
import { type Subscription, subscriptionToAvro } from '../../src/subscriptions/subscription.js';
import { defer } from './defer.js';
import { stackEnv } from './env.js';
import { createTopics, testAdmin, testKafka, uniqueName } from './kafka.js';
import { waitFor } from './wait.js';

const root = path.resolve(import.meta.dirname, '../..');

/** Unique topics, group and Redis prefix for one test: its own little world on the shared stack. */
export interface Scenario {
  t: TestContext;
  kafka: Kafka;
  admin: Admin;
  producer: Producer;
  registry: SchemaRegistry;
  topics: {
    events: string;
    subscriptions: string;
    results: string;
    dlq: string;
    deliveriesDlq: string;
    status: string;
    retryPrefix: string;
  };
  group: string;
  redisPrefix: string;
  /** The environment a dispatcher of this scenario runs with. */
  env: Record<string, string>;
}

export interface ScenarioOptions {
  /** Partitions of each topic. Default 3. */
  partitions?: number;
  /** A broker of the test's own instead of the shared stack's. */
  brokers?: string;
}

export async function createScenario(t: TestContext, opts: ScenarioOptions = {}): Promise<Scenario> {
  const partitions = opts.partitions ?? 3;
  const s = { ...stackEnv(), ...(opts.brokers ? { KAFKA_BROKERS: opts.brokers } : {}) };
  const kafka = testKafka('test', s.KAFKA_BROKERS);
  const admin = await testAdmin(t, kafka);
  const base = uniqueName('it');
  const topics = {
    events: `${base}.events`,
    subscriptions: `${base}.webhooks`,
    results: `${base}.results`,
    dlq: `${base}.events.dlq`,
    deliveriesDlq: `${base}.deliveries.dlq`,
    status: `${base}.status`,
    retryPrefix: `${base}.retries`,
  };
  const { retryPrefix: _, ...created } = topics;
  await createTopics(
    admin,
    Object.entries(created).map(([k, topic]) => ({
      topic,
      numPartitions: partitions,
      replicationFactor: 1,
      configEntries: k === 'subscriptions' ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
    })),
  );
  // Also removes the retry topics the dispatcher creates.
  defer(t, async () => {
    const mine = (await admin.listTopics()).filter((x) => x.startsWith(`${base}.`));
    await admin.deleteTopics({ topics: mine }).catch(() => {});
  });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  defer(t, () => producer.disconnect());
  const redisPrefix = `test:${randomBytes(6).toString('hex')}:`;
  const group = `${base}.group`;
  return {
    t,
    kafka,
    admin,
    producer,
    registry: new SchemaRegistry({ host: s.SCHEMA_REGISTRY_URL }),
    topics,
    group,
    redisPrefix,
    env: {
      ...s,
      EVENTS_TOPIC: topics.events,
      SUBSCRIPTIONS_TOPIC: topics.subscriptions,
      RESULTS_TOPIC: topics.results,
      DLQ_TOPIC: topics.dlq,
      DELIVERY_DLQ_TOPIC: topics.deliveriesDlq,
      STATUS_TOPIC: topics.status,
      RETRY_TOPIC_PREFIX: topics.retryPrefix,
      // A compressed schedule: three retries within about two seconds.
      RETRY_SCHEDULE: '300ms,600ms,1s',
      TOPIC_PARTITIONS: String(partitions),
      CONSUMER_GROUP: group,
      REDIS_KEY_PREFIX: redisPrefix,
      METRICS_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      DELIVERY_ALLOWLIST: '127.0.0.1/32,::1/128,localhost',
      LOG_LEVEL: 'info',
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      // Set by `npm run test:cluster`: the same scenarios on a Redis Cluster.
      ...(process.env.REDIS_CLUSTER_NODES ? { REDIS_CLUSTER_NODES: process.env.REDIS_CLUSTER_NODES } : {}),
    },
  };
}

/** Produces a subscription record (JSON by default; null value = delete). */
export async function putSubscription(
  s: Scenario,
  sub: Subscription | { id: string; value: null },
  format: 'json' | 'avro' = 'json',
) {
  if ('value' in sub) {
    await s.producer.send({ topic: s.topics.subscriptions, messages: [{ key: sub.id, value: null }] });
    return;
  }
  const value =
    format === 'json'
      ? JSON.stringify(sub)
      : await s.registry.encode(
          await registerSchema(s, 'webhook-subscription', s.topics.subscriptions),
          subscriptionToAvro(sub),
        );
  await s.producer.send({ topic: s.topics.subscriptions, messages: [{ key: sub.id, value }] });
}

/** Produces events, keyed by their entity id, in one request. */
export async function produceEvents(
  s: Scenario,
  events: Omit<BlueEvent, 'occurredAtMs'>[],
  format: 'json' | 'avro' = 'json',
) {
  const id = format === 'avro' ? await registerSchema(s, 'blue-event', s.topics.events) : 0;
  const messages = await Promise.all(
    events.map(async (e) => ({
      key: String(e.currentValue?.id ?? e.id),
      value: format === 'json' ? JSON.stringify(e) : await s.registry.encode(id, eventToAvro(e)),
    })),
  );
  // Chunks stay under the broker's 1 MB request limit with 2-3 KB events.
  for (let i = 0; i < messages.length; i += 250) {
    await s.producer.send({ topic: s.topics.events, messages: messages.slice(i, i + 250) });
  }
}

const schemaIds = new Map<string, number>();
async function registerSchema(
  s: Scenario,
  name: 'blue-event' | 'webhook-subscription',
  topic: string,
): Promise<number> {
  const key = `${name}:${topic}`;
  if (!schemaIds.has(key)) {
    const { id } = await s.registry.register(
      { type: 'AVRO' as never, schema: readSchema(name) },
      { subject: `${topic}-value` },
    );
    schemaIds.set(key, id);
  }
  return schemaIds.get(key)!;
}

/** Every record of a topic from its beginning, collected as it arrives, until the test ends. */
export async function collectTopic<T>(
  s: Scenario,
  topic: string,
  decode: (value: Buffer | null, headers: Record<string, string>) => Promise<T> | T,
): Promise<T[]> {
  const out: T[] = [];
  const consumer = s.kafka.consumer({ groupId: uniqueName('it.collect'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  defer(s.t, () => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
      out.push(await decode(message.value, headers));
    },
  });
  return out;
}

export interface DispatcherProcess {
  readonly proc: ChildProcess;
  readonly logs: Record<string, unknown>[];
  readonly stderr: string[];
  metricsPort: number;
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
  metrics(): Promise<string>;
  readyz(): Promise<{ status: number; body: string }>;
}

/** Runs the dispatcher (src/main.ts) as its own process and waits until it consumes events. */
export async function startDispatcher(
  s: Scenario,
  env: Record<string, string> = {},
  opts: { waitReady?: boolean } = {},
): Promise<DispatcherProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', INSTANCE_ID: `it-${randomBytes(3).toString('hex')}`, ...s.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  let buffered = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line));
      } catch {
        stderr.push(line);
      }
    }
  });
  proc.stderr!.on('data', (c: Buffer) => stderr.push(c.toString('utf8')));
  const exited = new Promise<number | string>((r) => proc.on('exit', (code, signal) => r(code ?? signal ?? -1)));
  defer(s.t, async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  const d: DispatcherProcess = {
    proc,
    logs,
    stderr,
    metricsPort: 0,
    exited,
    metrics: async () => (await fetch(`http://127.0.0.1:${d.metricsPort}/metrics`)).text(),
    readyz: async () => {
      const r = await fetch(`http://127.0.0.1:${d.metricsPort}/readyz`);
      return { status: r.status, body: await r.text() };
    },
  };
  const started = await waitFor(() => logs.find((l) => l.msg === 'starting') ?? (proc.exitCode !== null && 'exited'), {
    what: 'the dispatcher to start',
    timeoutMs: 30_000,
  });
  if (started === 'exited') throw new Error(`dispatcher exited at start: ${stderr.join('')}`);
  d.metricsPort = Number((started as { metricsPort: number }).metricsPort);
  if (opts.waitReady ?? true) {
    const ready = await waitFor(
      async () => (proc.exitCode !== null || proc.signalCode !== null ? 'exited' : (await d.readyz()).status === 200),
      { what: 'the dispatcher to be ready', timeoutMs: 60_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; its last log lines: ${lastLines(d)}`);
    });
    if (ready === 'exited') {
      // Its last words arrive with 'close', after 'exit'.
      await new Promise((r) => (proc.stdout!.closed && proc.stderr!.closed ? r(null) : proc.once('close', r)));
      throw new Error(`dispatcher exited (${proc.exitCode ?? proc.signalCode}) before it was ready: ${lastLines(d)}`);
    }
  }
  return d;
}

/** The process's last log lines and stderr, for an error message. */
function lastLines(d: DispatcherProcess): string {
  return [...d.logs.slice(-8).map((l) => JSON.stringify(l)), ...d.stderr.slice(-8)].join('\n');
}

/** Parses Prometheus text into "name{labels}" → value. */
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** Resolves once the group's committed offset of every partition of `topic` is at its end. */
export async function committedToEnd(s: Scenario, group: string, topic: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const ends = await s.admin.fetchTopicOffsets(topic);
      const [committed] = await s.admin.fetchOffsets({ groupId: group, topics: [topic] });
      return ends.every((e) => {
        const c = committed!.partitions.find((p) => p.partition === e.partition)!;
        return e.high === '0' || c.offset === e.high;
      });
    },
    { what: `committed offsets of ${group} at the end of ${topic}`, timeoutMs },
  );
}
