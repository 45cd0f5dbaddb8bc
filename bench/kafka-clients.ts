// `npm run bench:clients`: kafkajs and @platformatic/kafka 1.x side by side, alternated over 3
// rounds, each client in a process of its own:
// - consume: N events (default 100,000; --events N) of the bench's shape in 12 partitions, read to
//   the end by a fresh group (the bench's own (a) processes);
// - produce: N outcome-sized records written as the service's KafkaWriter writes them
//   (bench/produce-limit.ts), with the CPU each client spent per record.
// Prints every round and the ratios of the medians.
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Partitioners } from 'kafkajs';
import { sampleEvent } from '../src/demo/sample-data.js';
import { benchKafka } from './kafka.js';

const root = path.resolve(import.meta.dirname, '..');
const { values: flags } = parseArgs({ options: { events: { type: 'string', default: '100000' } } });
const N = Number(flags.events);
const brokers = process.env.KAFKA_BROKERS!;
const topic = `bench.clients.${randomBytes(4).toString('hex')}`;
const log = (msg: string) => process.stderr.write(`[bench:clients] ${msg}\n`);

/** Runs a bench process to its 'done' message. */
function done<T>(file: string, args: string[]): Promise<T> {
  const child: ChildProcess = fork(path.join(root, file), args, { execArgv: ['--import', 'tsx'] });
  return new Promise((resolve, reject) => {
    child.on('message', (m: { cmd: string }) => {
      if (m.cmd === 'done') {
        resolve(m as T);
        child.kill();
      }
    });
    child.on('exit', (code) => reject(new Error(`${file} exited (${code}) before it was done`)));
  });
}

const read = async (file: string, group: string) =>
  (await done<{ eventsPerSec: number }>(file, [brokers, topic, group, String(N), 'throughput'])).eventsPerSec;

const write = (which: 'kafkajs' | 'platformatic', to: string) =>
  done<{ recordsPerSec: number; cpuUsPerRecord: number }>('bench/produce-limit.ts', [brokers, to, String(N), which]);

const kafka = benchKafka(brokers);
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
  const produced = {
    kafkajs: [] as { recordsPerSec: number; cpuUsPerRecord: number }[],
    platformatic: [] as { recordsPerSec: number; cpuUsPerRecord: number }[],
  };
  const outTopic = `${topic}.outcomes`;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: outTopic, numPartitions: 12 }] });
  for (let round = 1; round <= 3; round++) {
    for (const which of ['kafkajs', 'platformatic'] as const) produced[which].push(await write(which, outTopic));
    const [k, p] = [produced.kafkajs.at(-1)!, produced.platformatic.at(-1)!];
    log(
      `produce round ${round}: kafkajs ${k.recordsPerSec.toFixed(0)} records/s at ${k.cpuUsPerRecord.toFixed(1)} µs CPU each, @platformatic/kafka ${p.recordsPerSec.toFixed(0)} at ${p.cpuUsPerRecord.toFixed(1)} µs`,
    );
  }
  const producedMedian = (which: 'kafkajs' | 'platformatic', key: 'recordsPerSec' | 'cpuUsPerRecord') =>
    median(produced[which].map((r) => r[key]));
  const result = {
    events: N,
    kafkajs: rates.kafkajs,
    platformatic: rates.platformatic,
    medianRatio: median(rates.platformatic) / median(rates.kafkajs),
    produce: {
      kafkajs: produced.kafkajs,
      platformatic: produced.platformatic,
      rateRatio: producedMedian('platformatic', 'recordsPerSec') / producedMedian('kafkajs', 'recordsPerSec'),
      cpuRatio: producedMedian('platformatic', 'cpuUsPerRecord') / producedMedian('kafkajs', 'cpuUsPerRecord'),
    },
  };
  log(
    `consume median: kafkajs ${median(rates.kafkajs).toFixed(0)}, @platformatic/kafka ${median(rates.platformatic).toFixed(0)} events/s; ratio ${result.medianRatio.toFixed(2)}`,
  );
  log(
    `produce median: kafkajs ${producedMedian('kafkajs', 'recordsPerSec').toFixed(0)} records/s, ${producedMedian('kafkajs', 'cpuUsPerRecord').toFixed(1)} µs CPU/record; @platformatic/kafka ${producedMedian('platformatic', 'recordsPerSec').toFixed(0)}, ${producedMedian('platformatic', 'cpuUsPerRecord').toFixed(1)} µs; rate ratio ${result.produce.rateRatio.toFixed(2)}, CPU ratio ${result.produce.cpuRatio.toFixed(2)}`,
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await admin.deleteTopics({ topics: [topic, `${topic}.outcomes`] }).catch(() => {});
  await Promise.all([admin.disconnect(), producer.disconnect()]);
}
