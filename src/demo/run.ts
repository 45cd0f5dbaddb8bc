// `npm run demo`: the main job on a local stack it starts itself. Starts the stack, the dispatcher,
// a receiver that verifies both signatures and prints each delivery, and a producer of sample Blue
// events for a sample subscription. Ctrl-C stops it all. DEMO_EVENTS=N stops after N deliveries
// and their N outcomes.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { type Kafka, logLevel, Partitioners } from 'kafkajs';
import { verifyBlueSignature, verifyStandardSignature } from '../delivery/index.js';
import { newKafkaClient } from '../kafka/index.js';
import type { WebhookResult } from '../results/index.js';
import { sampleEvent, sampleSubscription } from './sample-data.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET = 'demo-secret-change-me';
const TYPES = ['TODO_CREATED', 'TODO_MOVED', 'COMMENT_CREATED'];
const limit = Number(process.env.DEMO_EVENTS ?? 0);
const OUTCOME_WAIT_MS = 10_000;

function say(msg: string): void {
  process.stdout.write(`[demo] ${msg}\n`);
}

/** Starts the stack (idempotent) and reads the endpoints it wrote, rather than parsing its output. */
function stackUp(): Record<string, string> {
  const r = spawnSync(process.execPath, [path.join(root, 'stack/stack.mjs'), 'up'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) throw new Error('the local stack did not start');
  const file = path.join(path.resolve(process.env.STACK_DIR ?? path.join(root, '.stack')), 'run', 'endpoints.env');
  return Object.fromEntries(
    fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** Prints, for each outcome on the results topic, one short line: what the service recorded. */
async function followOutcomes(kafka: Kafka, registryUrl: string, onOutcome: () => void): Promise<void> {
  const registry = new SchemaRegistry({ host: registryUrl });
  const consumer = kafka.consumer({ groupId: `blue-demo.results.${process.pid}.${Date.now()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'blue.webhook-results' });
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.run({
    eachMessage: async ({ message }) => {
      const r = (await registry.decode(message.value!)) as WebhookResult;
      say(
        `  outcome on blue.webhook-results: ${r.outcome}${r.reason ? ` (${r.reason})` : ''}, HTTP ${r.httpStatus ?? '-'}, ${r.durationMs} ms, for ${r.deliveryId}`,
      );
      onOutcome();
    },
  });
  await joined;
}

async function startReceiver(onDelivery: (ok: boolean) => void): Promise<string> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const h = req.headers as Record<string, string>;
      const blue = verifyBlueSignature(SECRET, body, h['x-blue-signature'] ?? '');
      const standard = verifyStandardSignature(
        SECRET,
        { id: h['webhook-id'] ?? '', timestamp: h['webhook-timestamp'] ?? '', signature: h['webhook-signature'] ?? '' },
        body,
      );
      const payload = JSON.parse(body.toString('utf8'));
      say(
        `received ${h['x-blue-event']} delivery ${h['x-blue-delivery']} (attempt ${h['x-blue-attempt']}): ` +
          `"${payload.currentValue?.title}" in project ${payload.project?.id}; ` +
          `X-Blue-Signature ${blue ? 'valid' : 'INVALID'}, webhook-signature ${standard ? 'valid' : 'INVALID'}`,
      );
      res.writeHead(blue && standard ? 200 : 401).end();
      onDelivery(blue && standard);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/blue-webhook`;
}

async function main(): Promise<void> {
  say('starting the local stack (Kafka, schema registry, Redis)');
  const env = stackUp();
  let received = 0;
  let invalid = 0;
  let dispatcher: ChildProcess | null = null;
  let finishing = false;
  const finish = (code: number) => {
    if (finishing) return;
    finishing = true;
    say('stopping the dispatcher (the stack keeps running; `npm run stack:down` stops it)');
    dispatcher?.kill('SIGTERM');
    dispatcher?.once('exit', () => process.exit(code));
    if (!dispatcher) process.exit(code);
  };
  process.on('SIGINT', () => finish(0));
  process.on('SIGTERM', () => finish(0));

  // DEMO_EVENTS=N: done once N deliveries and their N outcomes are shown (an outcome is written
  // just after its delivery; one that does not come within OUTCOME_WAIT_MS is not waited for).
  let outcomesSeen = 0;
  const maybeFinish = () => {
    if (limit > 0 && received >= limit && outcomesSeen >= limit) finish(invalid === 0 ? 0 : 1);
  };
  const url = await startReceiver((ok) => {
    received++;
    if (!ok) invalid++;
    if (limit > 0 && received === limit) setTimeout(() => finish(invalid === 0 ? 0 : 1), OUTCOME_WAIT_MS);
    maybeFinish();
  });
  say(`receiver listening on ${url}`);

  const kafka = newKafkaClient({
    clientId: 'blue-demo',
    brokers: env.KAFKA_BROKERS!.split(','),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  // The table in Redis remembers topic positions; a stack started afresh (stack:down, then a new
  // Kafka) begins its topics at offset 0 again. A prefix per Kafka cluster keeps the demo from
  // reading the table a previous stack left in a Redis that outlives it.
  const { clusterId } = await admin.describeCluster();
  const prefix = process.env.REDIS_KEY_PREFIX || `bw:demo:${clusterId}:`;
  dispatcher = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
    env: {
      ...process.env,
      ...env,
      REDIS_KEY_PREFIX: prefix,
      DELIVERY_ALLOWLIST: '127.0.0.1/32',
      METRICS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Its JSON log: the port it really listens on from "starting"; warnings and errors shown as they are.
  const metricsPort = new Promise<number>((resolve) => {
    let buffered = '';
    dispatcher!.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const entry = JSON.parse(line) as { level?: string; msg?: string; metricsPort?: number };
        if (entry.msg === 'starting') resolve(entry.metricsPort!);
        if (entry.level === 'warn' || entry.level === 'error') process.stdout.write(`${line}\n`);
      }
    });
  });
  dispatcher.on('exit', (code) => {
    if (!finishing) {
      say(`dispatcher exited unexpectedly (${code})`);
      process.exit(1);
    }
  });

  // The dispatcher creates its topics; wait for them before producing.
  for (;;) {
    const topics = await admin.listTopics();
    if (topics.includes('blue.webhooks') && topics.includes('blue.events')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await admin.disconnect();
  await followOutcomes(kafka, env.SCHEMA_REGISTRY_URL!, () => {
    outcomesSeen++;
    maybeFinish();
  });

  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const sub = sampleSubscription({
    id: 'demo-webhook',
    name: 'Demo webhook',
    url,
    secret: SECRET,
    metadata: { events: TYPES, projectIds: ['clakt90vu000bvt64hhffqleq'] },
  });
  await producer.send({ topic: 'blue.webhooks', messages: [{ key: sub.id, value: JSON.stringify(sub) }] });
  say(
    `subscription "${sub.name}" registered for ${TYPES.join(', ')}; metrics on http://127.0.0.1:${await metricsPort}/metrics`,
  );

  for (let i = 1; !finishing; i++) {
    const e = sampleEvent({ type: TYPES[i % TYPES.length], title: `Sample todo #${i}` });
    await producer.send({
      topic: 'blue.events',
      messages: [{ key: String(e.currentValue?.id), value: JSON.stringify(e) }],
    });
    if (limit > 0 && i >= limit) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  // The outcomes consumer runs on: the last outcomes come after the last event (finish() exits).
  await producer.disconnect();
}

main().catch((err) => {
  process.stderr.write(`[demo] failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
