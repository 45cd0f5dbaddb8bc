// kafkajs restarts a crashed consumer only after a retriable error; after any other it leaves it
// disconnected for good. The service must start a new consumer, which resumes from the commits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import kafkajs from 'kafkajs';
import { SupervisedConsumer } from '../../src/kafka/supervised-consumer.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/shared/logger.js';
import { defer } from '../helpers/defer.js';
import { parseMetrics } from '../helpers/dispatcher.js';
import { createTestTopic, testAdmin, testKafka, uniqueName } from '../helpers/kafka.js';
import { waitFor } from '../helpers/wait.js';

test('a consumer that kafkajs gives up on is replaced, and the replacement reads on from the committed offset', async (t) => {
  const kafka = testKafka();
  const admin = await testAdmin(t, kafka);
  const topic = await createTestTopic(t, admin, 'it.supervised', { numPartitions: 1 });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  defer(t, () => producer.disconnect());
  await producer.send({ topic, messages: ['a', 'b', 'c'].map((value) => ({ value })) });

  const metrics = new Metrics();
  const logs: Record<string, unknown>[] = [];
  const seen: string[] = [];
  let failed = false;
  const consumer = new SupervisedConsumer({
    kafka,
    name: 'events',
    metrics,
    log: createLogger({ write: (line) => logs.push(JSON.parse(line)) }),
    backoff: { initialMs: 100, maxMs: 100 },
    config: {
      groupId: uniqueName('it.supervised'),
      maxWaitTimeInMs: 100,
      retry: { retries: 1, restartOnFailure: async () => true },
    },
    setup: async (c) => {
      await c.subscribe({ topic, fromBeginning: true });
      await c.run({
        autoCommit: false,
        eachMessage: async ({ message, partition }) => {
          const value = message.value!.toString();
          if (value === 'b' && !failed) {
            failed = true;
            throw new kafkajs.KafkaJSNonRetriableError('simulated: an error kafkajs does not restart after');
          }
          seen.push(value);
          await c.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }]);
        },
      });
    },
  });
  defer(t, () => consumer.stop());
  await consumer.start();

  await waitFor(() => seen.includes('c'), { what: 'the replacement consumer to read on', timeoutMs: 30_000 });
  assert.deepEqual(seen, ['a', 'b', 'c'], 'read on from the commit after a: nothing skipped, nothing read twice');
  const m = parseMetrics(await metrics.registry.metrics());
  assert.equal(m.get('blue_webhooks_consumer_crashes_total{consumer="events",restarted_by="service"}'), 1);
  assert.ok(
    logs.some(
      (l) => l.msg === 'consumer crashed and kafkajs gave up on it; starting a new one' && l.consumer === 'events',
    ),
  );
});
