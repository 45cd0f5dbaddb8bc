// The one Kafka writer against a real broker: produce requests are cut to fit, and a record that
// can never fit is refused at once instead of being retried forever.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { createProducer } from '../../src/kafka/producer.js';
import { KafkaWriter } from '../../src/kafka/writer.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/shared/logger.js';
import { defer } from '../helpers/defer.js';
import { stackEnv } from '../helpers/env.js';
import { createTestTopic, testAdmin, testKafka, uniqueName } from '../helpers/kafka.js';
import { waitFor } from '../helpers/wait.js';

async function writerFor(t: TestContext, maxRequestBytes = 1_000_000) {
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

test('keys land on the partitions the Java client (and kafkajs) picks, and headers and null keys arrive as written', async (t) => {
  const { admin, writer } = await writerFor(t);
  const topic = await createTestTopic(t, admin, 'it.writer', { numPartitions: 12 });
  // Ids whose murmur2 hash has its top bit set go elsewhere with an unmasked hash: half of them.
  const keys = Array.from({ length: 200 }, (_, i) => `wh_${i}`);
  await Promise.all(
    keys.map((key) => writer.write(topic, { key, value: key, headers: { 'x-a': 'one', 'x-b': ['two', 'three'] } })),
  );
  await writer.write(topic, { key: null, value: 'no key' });
  const javaPartitioner = Partitioners.DefaultPartitioner();
  const expected = new Map(
    keys.map((key) => [
      key,
      javaPartitioner({ topic, partitionMetadata: partitionsOf(12), message: { key, value: key } }),
    ]),
  );
  // Until every key and the keyless record are in: a produce retried under load may have written
  // some twice (at-least-once), so a count of records alone can be reached first.
  const seen = await readBack(t, topic, (records) => {
    const found = new Set(records.map((r) => r.key));
    return found.has(null) && keys.every((key) => found.has(key));
  });
  const moved = seen.filter((r) => r.key !== null && r.partition !== expected.get(r.key));
  assert.deepEqual(moved, [], 'every key on the partition kafkajs would have picked');
  const first = seen.find((r) => r.key === 'wh_0')!;
  assert.equal(String(first.headers['x-a']), 'one');
  assert.deepEqual((first.headers['x-b'] as Buffer[]).map(String), ['two', 'three']);
  assert.ok(
    seen.some((r) => r.key === null),
    'a record without a key is written too',
  );
});

type ReadRecord = { key: string | null; partition: number; headers: Record<string, unknown> };

/** The topic's records, read from the start by a group of their own until `enough` says so (or 30 s pass). */
async function readBack(t: TestContext, topic: string, enough: (records: ReadRecord[]) => boolean) {
  const consumer = testKafka().consumer({ groupId: uniqueName('it.writer') });
  await consumer.connect();
  defer(t, () => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  // By position: a consumer may be handed a record twice (a rebalance while it starts), and a
  // count of records seen would then be reached before every record was.
  const seen = new Map<string, ReadRecord>();
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const record = { key: message.key?.toString() ?? null, partition, headers: message.headers ?? {} };
      seen.set(`${partition}:${message.offset}`, record);
    },
  });
  await waitFor(() => enough([...seen.values()]), { what: 'the records read back', timeoutMs: 30_000 });
  return [...seen.values()];
}

function partitionsOf(n: number): PartitionMetadata[] {
  return Array.from({ length: n }, (_, partitionId) => ({
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
    partitionErrorCode: 0,
  }));
}

test('hostile headers copied from an outside record (a dead letter keeps them) arrive as written; a header without a value is left out', async (t) => {
  const { admin, writer } = await writerFor(t);
  const topic = await createTestTopic(t, admin, 'it.writer', { numPartitions: 1 });
  const binary = Buffer.from([0x00, 0xff, 0xfe, 0x0a, 0x7b]);
  const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`h${i}`, `v${i}`]));
  const headers = {
    ...many,
    '': 'empty name',
    'ünï{cödé}\n': 'odd name',
    binary,
    big: Buffer.alloc(100_000, 'x'),
    absent: undefined,
  };
  await writer.write(topic, { key: 'k', value: 'v', headers });
  const got = (await readBack(t, topic, (records) => records.length >= 1))[0]!.headers as Record<
    string,
    Buffer | undefined
  >;
  assert.equal(String(got['']), 'empty name');
  assert.equal(String(got['ünï{cödé}\n']), 'odd name');
  assert.deepEqual(got.binary, binary);
  assert.equal(got.big?.length, 100_000);
  assert.equal(String(got.h199), 'v199');
  assert.equal(Object.keys(got).length, 204, 'every header with a value, and nothing for the one without');
  assert.ok(!('absent' in got));
});
