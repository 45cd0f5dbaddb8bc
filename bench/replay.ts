// `npm run bench:replay`: how fast `replay` goes through a time range of the events topic.
// Produces N events (default 100,000; --events N) into topics of its own, with one webhook
// subscribed to a tenth of them, lets a dispatcher build the subscription table (its retries are
// set far in the future, so queued replays stay queued), then times the replay tool over the
// whole range: --dry-run (read, decode, match) and for real (plus queueing each match).
// Prints events/s for both and the ratio to a bare kafkajs read of the same range.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Partitioners } from 'kafkajs';
import { sampleEvent, sampleSubscription } from '../src/demo/sample-data.js';
import { SubscriptionStore } from '../src/subscriptions/store.js';
import { benchKafka } from './kafka.js';

const root = path.resolve(import.meta.dirname, '..');
const { values: flags } = parseArgs({ options: { events: { type: 'string', default: '100000' } } });
const N = Number(flags.events);
const log = (msg: string) => process.stderr.write(`[bench:replay] ${msg}\n`);
const base = `bench.replay.${randomBytes(4).toString('hex')}`;
const env: Record<string, string> = {
  PATH: process.env.PATH ?? '',
  KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
  SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL!,
  REDIS_URL: process.env.REDIS_URL!,
  EVENTS_TOPIC: `${base}.events`,
  SUBSCRIPTIONS_TOPIC: `${base}.webhooks`,
  RESULTS_TOPIC: `${base}.results`,
  DLQ_TOPIC: `${base}.events.dlq`,
  DELIVERY_DLQ_TOPIC: `${base}.deliveries.dlq`,
  STATUS_TOPIC: `${base}.status`,
  RETRY_TOPIC_PREFIX: `${base}.retries`,
  RETRY_SCHEDULE: '1h',
  TOPIC_PARTITIONS: '12',
  CONSUMER_GROUP: `${base}.group`,
  REDIS_KEY_PREFIX: `${base}:`,
  METRICS_PORT: '0',
  METRICS_HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
};

function run(file: string, args: string[]): Promise<{ code: number | null; stdout: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(root, file), ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  proc.stdout.on('data', (c) => {
    stdout += c;
  });
  return new Promise((resolve) => proc.on('exit', (code) => resolve({ code, stdout })));
}

const kafka = benchKafka(env.KAFKA_BROKERS!);
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
await Promise.all([admin.connect(), producer.connect()]);
const dispatcher = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
  cwd: root,
  env,
  stdio: 'ignore',
});
try {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: env.EVENTS_TOPIC!, numPartitions: 12 },
      {
        topic: env.SUBSCRIPTIONS_TOPIC!,
        numPartitions: 1,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
      },
    ],
  });
  const sub = sampleSubscription({
    id: 'wh_replay',
    url: 'http://127.0.0.1:9/never',
    metadata: { events: ['TODO_CREATED'], projectIds: ['proj_0'] },
  });
  await producer.send({ topic: env.SUBSCRIPTIONS_TOPIC!, messages: [{ key: sub.id, value: JSON.stringify(sub) }] });
  const from = new Date(Date.now() - 1000);
  const template = JSON.stringify(sampleEvent({ eventId: 'EVT_ID', projectId: 'PROJ_ID' }));
  for (let i = 0; i < N; i += 500) {
    const messages = [];
    for (let j = i; j < Math.min(N, i + 500); j++) {
      messages.push({
        key: `todo_${j}`,
        value: template.replace('EVT_ID', `evt_${j}`).replaceAll('PROJ_ID', `proj_${j % 10}`),
      });
    }
    await producer.send({ topic: env.EVENTS_TOPIC!, acks: 1, messages });
  }
  const to = new Date(Date.now() + 1000);
  log(`${N} events produced; waiting for the dispatcher's table`);
  // The dispatcher's webhook goes nowhere (port 9) and retries in an hour: it is here to build the
  // table, which replay reads. Polled in Redis (the store's own "table complete" marker and the row).
  const redis = new Redis(env.REDIS_URL!);
  const store = new SubscriptionStore(redis, env.REDIS_KEY_PREFIX!);
  for (const deadline = Date.now() + 60_000; ; ) {
    // The row is read only once the table is marked complete: before that, a read is refused.
    if ((await store.isMarkedReady()) && (await store.get('wh_replay')) !== null) break;
    if (Date.now() > deadline) throw new Error('the subscription table was not built within 60 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  redis.disconnect();

  // A bare read of the same range, for scale.
  const bare = await run('bench/replay-read.ts', [env.EVENTS_TOPIC!, String(N)]);
  const bareRate = JSON.parse(bare.stdout).eventsPerSec as number;
  const range = ['--webhook', 'wh_replay', '--from', from.toISOString(), '--to', to.toISOString()];
  const dry = JSON.parse((await run('src/tools/replay.ts', [...range, '--dry-run'])).stdout);
  const real = JSON.parse((await run('src/tools/replay.ts', range)).stdout);
  const rate = (r: { scanned: number; seconds: number }) => r.scanned / r.seconds;
  const out = {
    events: N,
    bareReadEventsPerSec: Math.round(bareRate),
    dryRun: { ...dry, eventsPerSec: Math.round(rate(dry)) },
    queueing: { ...real, eventsPerSec: Math.round(rate(real)) },
    ratioDryRunToBareRead: Number((rate(dry) / bareRate).toFixed(2)),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  if (dry.scanned !== N || real.queued !== N / 10) {
    log(`expected ${N} scanned and ${N / 10} queued`);
    process.exitCode = 1;
  }
} finally {
  dispatcher.kill('SIGKILL');
  const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${base}.`));
  await admin.deleteTopics({ topics: mine }).catch(() => {});
  await Promise.all([admin.disconnect(), producer.disconnect()]);
}
