// The foundation: kafkajs, the schema registry and Redis work against the local stack.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import kafkajs from 'kafkajs';
import { defer } from '../helpers/defer.js';
import { stackEnv } from '../helpers/env.js';
import { createTestTopic, testAdmin, testKafka, uniqueName } from '../helpers/kafka.js';
import { testRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

test('an Avro record goes through the registry, Kafka and a consumer group, and decodes to the same value', async (t) => {
  const kafka = testKafka();
  const admin = await testAdmin(t, kafka);
  const topic = await createTestTopic(t, admin, 'it.stack.avro');
  const registry = new SchemaRegistry({ host: stackEnv().SCHEMA_REGISTRY_URL });
  const schema = {
    type: 'record',
    name: 'Probe',
    namespace: `test.${uniqueName('ns').replace(/\./g, '_')}`,
    fields: [
      { name: 'id', type: 'string' },
      { name: 'n', type: 'long' },
      { name: 'tags', type: { type: 'array', items: 'string' } },
    ],
  };
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
    { subject: `${topic}-value` },
  );
  const value = { id: 'p-1', n: 42, tags: ['a', 'b'] };
  const encoded = await registry.encode(id, value);
  assert.equal(encoded[0], 0, 'Confluent framing starts with the magic byte 0');
  assert.equal(encoded.readInt32BE(1), id, 'then the schema id');

  const producer = kafka.producer();
  await producer.connect();
  defer(t, () => producer.disconnect());
  await producer.send({ topic, messages: [{ key: 'p-1', value: encoded }] });

  const groupId = uniqueName('it.stack.group');
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  defer(t, () => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  const received: { value: unknown; partition: number; offset: string }[] = [];
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message, partition }) => {
      received.push({ value: await registry.decode(message.value!), partition, offset: message.offset });
    },
  });
  const [first] = await waitFor(() => received.length > 0 && received, { what: 'the Avro record' });
  assert.deepEqual({ ...(first!.value as object) }, value);

  // Commit explicitly and read the committed offset back through the admin API.
  await consumer.commitOffsets([{ topic, partition: first!.partition, offset: String(Number(first!.offset) + 1) }]);
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const p = committed[0]!.partitions.find((x) => x.partition === first!.partition);
  assert.equal(p?.offset, String(Number(first!.offset) + 1));
});

test('a compacted topic is created and its config reads back cleanup.policy=compact', async (t) => {
  const admin = await testAdmin(t);
  const topic = await createTestTopic(t, admin, 'it.stack.compact', {
    numPartitions: 1,
    configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
  });
  const res = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }],
  });
  const entry = res.resources[0]!.configEntries.find((e) => e.configName === 'cleanup.policy');
  assert.equal(entry?.configValue, 'compact');
});

test('a Redis round trip', async (t) => {
  const { redis, prefix } = testRedis(t);
  await redis.set(`${prefix}k`, 'v', 'PX', 60_000);
  assert.equal(await redis.get(`${prefix}k`), 'v');
  assert.ok((await redis.pttl(`${prefix}k`)) > 0);
});
