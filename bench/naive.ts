// (d) A naive dispatcher, written the way most tutorials do: eachMessage, one Redis lookup per
// event, one awaited HTTP request at a time. It reads the same table and signs the same way; it
// skips the results topic entirely, which only flatters it. It is the floor.
import { createHmac } from 'node:crypto';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { SubscriptionStore } from '../src/subscriptions/store.js';

const [brokers, topic, groupId, redisUrl, prefix, expectRaw] = process.argv.slice(2);
const expect = Number(expectRaw);

async function main(): Promise<void> {
  const redis = new Redis(redisUrl!);
  // The table it reads: index keys by name, each webhook from its home.
  const table = new SubscriptionStore(redis, prefix!);
  const kafka = new Kafka({ clientId: 'bench-naive', brokers: brokers!.split(','), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: groupId!, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic: topic!, fromBeginning: true });
  let events = 0;
  let deliveries = 0;
  let first = 0;
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        // Past its share, it sends nothing more: a stray unsigned delivery would land in the next run.
        if (events >= expect) return;
        if (first === 0) first = performance.now();
        const event = JSON.parse(message.value!.toString());
        const ids = await redis.smembers(table.indexKey(event.project.id, event.event));
        for (const id of ids) {
          const sub = JSON.parse((await table.get(id))!.json);
          if (!sub.enabled || sub.companyId !== event.company.id) continue;
          const { secret, filters, companyId, ...webhook } = sub;
          const body = JSON.stringify({
            event: event.event,
            webhook,
            currentValue: event.currentValue,
            previousValue: event.previousValue,
            company: event.company,
            project: event.project,
            user: event.user,
          });
          const res = await fetch(sub.url, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'x-blue-delivery': `${event.id}:${id}`,
              'x-blue-signature': createHmac('sha256', secret).update(body).digest('hex'),
            },
            body,
          });
          await res.text();
          deliveries++;
        }
        if (++events >= expect) resolve();
      },
    });
  });
  const seconds = (performance.now() - first) / 1000;
  // Sent before disconnecting and exiting: an IPC message still being written is lost at exit.
  await new Promise<void>((sent) =>
    process.send!({ events, deliveries, deliveriesPerSec: deliveries / seconds }, () => sent()),
  );
  await consumer.disconnect();
  redis.disconnect();
}

void main();
