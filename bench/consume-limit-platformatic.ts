// (a') The consume limit with @platformatic/kafka 1.x instead of kafkajs: a consumer group that
// reads the same events topic and does no work, for a side-by-side figure (issue: which Kafka
// client). Prints {eventsPerSec} after `expect` messages.
import { Consumer, MessagesStreamModes } from '@platformatic/kafka';

const [brokers, topic, groupId, expectRaw] = process.argv.slice(2);
const expect = Number(expectRaw);

async function main(): Promise<void> {
  const consumer = new Consumer({
    groupId: groupId!,
    clientId: 'bench-consume-platformatic',
    bootstrapBrokers: brokers!.split(','),
  });
  const stream = await consumer.consume({
    topics: [topic!],
    mode: MessagesStreamModes.EARLIEST,
    autocommit: false,
    maxWaitTime: 100,
  });
  process.send?.({ cmd: 'ready' });
  let n = 0;
  let first = 0;
  await new Promise<void>((resolve) => {
    stream.on('data', () => {
      if (first === 0) first = performance.now();
      if (++n === expect) resolve();
    });
  });
  const seconds = (performance.now() - first) / 1000;
  await new Promise<void>((sent) => process.send!({ cmd: 'done', events: n, eventsPerSec: n / seconds }, () => sent()));
  await stream.close();
  await consumer.close(true);
}

void main();
