// A bare kafkajs read of a whole topic, in a process of its own: the yardstick for bench/replay.ts.
//   node --import tsx bench/replay-read.ts <topic> <expected count>

import { scanRange } from '../src/kafka/scan.js';
import { benchKafka } from './kafka.js';

const [topic, expected] = process.argv.slice(2);
const kafka = benchKafka(process.env.KAFKA_BROKERS!);
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
