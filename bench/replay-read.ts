// A bare kafkajs read of a whole topic, in a process of its own: the yardstick for bench/replay.ts.
//   node --import tsx bench/replay-read.ts <topic> <expected count>

import { Kafka, logLevel } from 'kafkajs';
import { scanRange } from '../src/kafka/scan.js';

const [topic, expected] = process.argv.slice(2);
const kafka = new Kafka({ brokers: process.env.KAFKA_BROKERS!.split(','), logLevel: logLevel.NOTHING });
const t0 = performance.now();
let n = 0;
await scanRange({
  kafka,
  topic: topic!,
  purpose: 'bench-read',
  each: async (messages) => {
    n += messages.length;
  },
});
const seconds = (performance.now() - t0) / 1000;
if (n !== Number(expected)) process.stderr.write(`read ${n}, expected ${expected}\n`);
process.stdout.write(`${JSON.stringify({ read: n, seconds, eventsPerSec: n / seconds })}\n`);
