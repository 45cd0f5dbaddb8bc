// `npm run demo`: the main job on a local stack it starts itself. Starts the stack, the dispatcher,
// a receiver that verifies both signatures and prints each delivery, and a producer of sample Blue
// events for a sample subscription. Ctrl-C stops it all. DEMO_EVENTS=N stops after N deliveries.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { verifyBlueSignature, verifyStandardSignature } from '../delivery/signing.js';
import { sampleEvent, sampleSubscription } from './sample-data.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET = 'demo-secret-change-me';
const TYPES = ['TODO_CREATED', 'TODO_MOVED', 'COMMENT_CREATED'];
const limit = Number(process.env.DEMO_EVENTS ?? 0);

function say(msg: string): void {
  process.stdout.write(`[demo] ${msg}\n`);
}

function stackUp(): Record<string, string> {
  const r = spawnSync(process.execPath, [path.join(root, 'stack/stack.mjs'), 'up'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error('the local stack did not start');
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
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

  const url = await startReceiver((ok) => {
    received++;
    if (!ok) invalid++;
    if (limit > 0 && received >= limit) finish(invalid === 0 ? 0 : 1);
  });
  say(`receiver listening on ${url}`);

  const kafka = new Kafka({ clientId: 'blue-demo', brokers: env.KAFKA_BROKERS!.split(','), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  // The table in Redis remembers topic positions; a stack started afresh (stack:down, then a new
  // Kafka) begins its topics at offset 0 again. A prefix per Kafka cluster keeps the demo from
  // reading the table a previous stack left in a Redis that outlives it.
  const { clusterId } = await admin.describeCluster();
  const prefix = process.env.REDIS_KEY_PREFIX || `bw:demo:${clusterId}:`;
  dispatcher = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
    env: { ...process.env, ...env, REDIS_KEY_PREFIX: prefix, DELIVERY_ALLOWLIST: '127.0.0.1/32', METRICS_HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: 'inherit',
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

  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const sub = sampleSubscription({ id: 'demo-webhook', name: 'Demo webhook', url, secret: SECRET, metadata: { events: TYPES, projectIds: ['clakt90vu000bvt64hhffqleq'] } });
  await producer.send({ topic: 'blue.webhooks', messages: [{ key: sub.id, value: JSON.stringify(sub) }] });
  say(`subscription "${sub.name}" registered for ${TYPES.join(', ')}; metrics on http://127.0.0.1:9464/metrics`);

  for (let i = 1; !finishing; i++) {
    const e = sampleEvent({ type: TYPES[i % TYPES.length], title: `Sample todo #${i}` });
    await producer.send({ topic: 'blue.events', messages: [{ key: String(e.currentValue?.id), value: JSON.stringify(e) }] });
    if (limit > 0 && i >= limit) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  await producer.disconnect();
}

main().catch((err) => {
  process.stderr.write(`[demo] failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
