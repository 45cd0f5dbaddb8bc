// `npm run bench:clients`: the consume limit of kafkajs and of @platformatic/kafka 1.x side by side
// on the same topic: N events (default 100,000; --events N) of the bench's shape in 12 partitions,
// read to the end by a fresh group of each client, alternated over 3 rounds. Prints both rates and
// the ratio of the medians. Both readers are the bench's own (a) processes.
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { sampleEvent } from '../src/demo/sample-data.js';

const root = path.resolve(import.meta.dirname, '..');
const { values: flags } = parseArgs({ options: { events: { type: 'string', default: '100000' } } });
const N = Number(flags.events);
const brokers = process.env.KAFKA_BROKERS!;
const topic = `bench.clients.${randomBytes(4).toString('hex')}`;
const log = (msg: string) => process.stderr.write(`[bench:clients] ${msg}\n`);

function read(file: string, group: string): Promise<number> {
  const child: ChildProcess = fork(path.join(root, file), [brokers, topic, group, String(N), 'throughput'], {
    execArgv: ['--import', 'tsx'],
  });
  return new Promise((resolve, reject) => {
    child.on('message', (m: { cmd: string; eventsPerSec?: number }) => {
      if (m.cmd === 'done') {
        resolve(m.eventsPerSec!);
        child.kill();
      }
    });
    child.on('exit', (code) => reject(new Error(`${file} exited (${code}) before it was done`)));
  });
}

const kafka = new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING });
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
await Promise.all([admin.connect(), producer.connect()]);
try {
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 12 }] });
  const value = JSON.stringify(sampleEvent());
  for (let i = 0; i < N; i += 1000) {
    const messages = Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({ key: `todo_${i + j}`, value }));
    await producer.send({ topic, acks: 1, messages });
  }
  log(`${N} events of ${value.length} bytes in ${topic}`);
  const rates: Record<'kafkajs' | 'platformatic', number[]> = { kafkajs: [], platformatic: [] };
  for (let round = 1; round <= 3; round++) {
    rates.kafkajs.push(await read('bench/consume-limit.ts', `${topic}.kafkajs.${round}`));
    rates.platformatic.push(await read('bench/consume-limit-platformatic.ts', `${topic}.platformatic.${round}`));
    log(
      `round ${round}: kafkajs ${rates.kafkajs.at(-1)!.toFixed(0)}, @platformatic/kafka ${rates.platformatic.at(-1)!.toFixed(0)} events/s`,
    );
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
  const result = {
    events: N,
    kafkajs: rates.kafkajs,
    platformatic: rates.platformatic,
    medianRatio: median(rates.platformatic) / median(rates.kafkajs),
  };
  log(
    `median: kafkajs ${median(rates.kafkajs).toFixed(0)}, @platformatic/kafka ${median(rates.platformatic).toFixed(0)} events/s; ratio ${result.medianRatio.toFixed(2)}`,
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await admin.deleteTopics({ topics: [topic] }).catch(() => {});
  await Promise.all([admin.disconnect(), producer.disconnect()]);
}
