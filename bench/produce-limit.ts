// The produce side of the Kafka client comparison (`npm run bench:clients`): outcome-sized records
// (a 5-byte Confluent header and 250 bytes of Avro, keyed by webhook id) written the way the
// service's KafkaWriter writes them: requests of BATCH records, CONCURRENT requests at once,
// acks=all, no compression (BENCH_BATCH=N for another request size). One client a process;
// prints {recordsPerSec, cpuUsPerRecord}.
//   node --import tsx bench/produce-limit.ts <brokers> <topic> <records> kafkajs|platformatic
import { ProduceAcks, Producer } from '@platformatic/kafka';
import { Partitioners } from 'kafkajs';
import { benchKafka } from './kafka.js';

const [brokers, topic, countRaw, client] = process.argv.slice(2);
const COUNT = Number(countRaw);
const BATCH = Number(process.env.BENCH_BATCH ?? 64);
const CONCURRENT = 4;
const value = Buffer.concat([Buffer.from([0, 0, 0, 0, 1]), Buffer.alloc(250, 7)]);

type Send = (messages: { key: string; value: Buffer }[]) => Promise<unknown>;

async function connect(): Promise<{ send: Send; close: () => Promise<unknown> }> {
  if (client === 'kafkajs') {
    const producer = benchKafka(brokers!).producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    return {
      send: (messages) => producer.send({ topic: topic!, acks: -1, messages }),
      close: () => producer.disconnect(),
    };
  }
  const producer = new Producer({
    clientId: 'bench-produce',
    bootstrapBrokers: brokers!.split(','),
    idempotent: false,
  });
  return {
    send: (messages) =>
      producer.send({
        acks: ProduceAcks.ALL,
        messages: messages.map((m) => ({ topic: topic!, key: Buffer.from(m.key), value: m.value })),
      }),
    close: () => producer.close(),
  };
}

async function main(): Promise<void> {
  const { send, close } = await connect();
  const batch = (from: number) => Array.from({ length: BATCH }, (_, i) => ({ key: `wh_${(from + i) % 1000}`, value }));
  await send(batch(0)); // connections and metadata, outside the measure
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let next = 0;
  const worker = async () => {
    while (next < COUNT) {
      const from = next;
      next += BATCH;
      await send(batch(from));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENT }, worker));
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  const records = Math.ceil(COUNT / BATCH) * BATCH;
  await close();
  await new Promise<void>((sent) =>
    process.send!(
      { cmd: 'done', recordsPerSec: records / seconds, cpuUsPerRecord: (cpu.user + cpu.system) / records },
      () => sent(),
    ),
  );
}

void main();
