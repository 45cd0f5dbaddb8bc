// (a) The consume limit: a kafkajs consumer group that reads the events topic and does no work.
// Prints {eventsPerSec} after `expect` messages; in latency mode reports produce→consume latency
// from the benchSentAt the producer put in each event.
import { benchKafka } from './kafka.js';

const [brokers, topic, groupId, expectRaw, mode] = process.argv.slice(2);
const expect = Number(expectRaw);
const SENT_AT = /"benchSentAt":([0-9.]+)/;
const now = () => performance.timeOrigin + performance.now();

async function main(): Promise<void> {
  const kafka = benchKafka(brokers!, 'bench-consume');
  const consumer = kafka.consumer({ groupId: groupId!, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic: topic!, fromBeginning: mode !== 'latency' });
  let n = 0;
  let first = 0;
  const latencies: number[] = [];
  await new Promise<void>((resolve) => {
    void consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: async ({ batch }) => {
        const at = now();
        if (first === 0) first = at;
        if (mode === 'latency') {
          for (const m of batch.messages) {
            const s = SENT_AT.exec(m.value!.toString('latin1', 0, 4096));
            if (s) latencies.push(at - Number(s[1]));
          }
        }
        n += batch.messages.length;
        if (n >= expect) resolve();
      },
    });
    process.send?.({ cmd: 'ready' });
  });
  const seconds = (now() - first) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
  // Sent before disconnecting and exiting: an IPC message still being written is lost at exit.
  await new Promise<void>((sent) =>
    process.send!(
      { cmd: 'done', events: n, eventsPerSec: n / seconds, p50: pct(50), p99: pct(99), max: latencies.at(-1) ?? 0 },
      () => sent(),
    ),
  );
  await consumer.disconnect();
}

void main();
