// The one Kafka writer against a real broker: produce requests are cut to fit, and a record that
// can never fit is refused at once instead of being retried forever.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { createProducer } from '../../src/kafka/producer.js';
import { KafkaWriter } from '../../src/kafka/writer.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/shared/logger.js';
import { defer } from '../helpers/defer.js';
import { stackEnv } from '../helpers/env.js';
import { createTestTopic, testAdmin, testKafka } from '../helpers/kafka.js';

async function writerFor(t: import('node:test').TestContext, maxRequestBytes = 1_000_000) {
  const kafka = testKafka();
  const admin = await testAdmin(t, kafka);
  const transport = createProducer({ brokers: stackEnv().KAFKA_BROKERS!.split(','), clientId: 'test-writer' });
  defer(t, () => transport.close());
  const writer = new KafkaWriter({
    transport,
    metrics: new Metrics({ defaultMetrics: false }),
    log: createLogger({ write: () => {} }),
    isStopping: () => false,
    maxRequestBytes,
  });
  return { admin, writer };
}

/** Settles within `ms` or says it hung (a write retried forever never settles). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'hung'> {
  return Promise.race([p, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms).unref())]);
}

test('1,000 retry-sized records for one partition written in one turn (2.5 MB) are all acknowledged', async (t) => {
  const { admin, writer } = await writerFor(t);
  const topic = await createTestTopic(t, admin, 'it.writer', { numPartitions: 1 });
  const value = Buffer.alloc(2500, 'x');
  const writes = Array.from({ length: 1000 }, () => writer.write(topic, { key: 'wh', value }));
  assert.notEqual(await within(Promise.all(writes), 30_000), 'hung');
  const [end] = await admin.fetchTopicOffsets(topic);
  assert.equal(end!.high, '1000');
});

test('a record over the limit is compressed and sent alone when that fits, refused at once as RECORD_TOO_LARGE when not', async (t) => {
  const { admin, writer } = await writerFor(t);
  const topic = await createTestTopic(t, admin, 'it.writer', { numPartitions: 1 });
  const compressible = Buffer.from('Collect the numbers from every team. '.repeat(40_000)); // 1.5 MB
  assert.notEqual(await within(writer.write(topic, { key: 'a', value: compressible }), 30_000), 'hung');
  const random = Buffer.from(randomBytes(2_000_000).toString('base64')); // 2.7 MB, barely compressible
  const refused = await within(
    writer.write(topic, { key: 'b', value: random }).then(
      () => 'written',
      (err: { code?: string }) => err.code,
    ),
    10_000,
  );
  assert.equal(refused, 'RECORD_TOO_LARGE');
});

test('a topic with a smaller limit than ours: requests are halved until they fit, and a lone record over it is refused', async (t) => {
  const { admin, writer } = await writerFor(t);
  const topic = await createTestTopic(t, admin, 'it.writer', {
    numPartitions: 1,
    configEntries: [{ name: 'max.message.bytes', value: '100000' }],
  });
  const writes = Array.from({ length: 6 }, () => writer.write(topic, { key: 'k', value: randomBytes(40_000) }));
  assert.notEqual(await within(Promise.all(writes), 30_000), 'hung');
  const refused = await within(
    writer.write(topic, { key: 'k', value: randomBytes(150_000) }).then(
      () => 'written',
      (err: { code?: string }) => err.code,
    ),
    30_000,
  );
  assert.equal(refused, 'RECORD_TOO_LARGE');
});
