import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { type Admin, type Kafka, logLevel } from 'kafkajs';
import { newKafkaClient } from '../../src/kafka/index.js';
import { defer } from './defer.js';
import { stackEnv } from './env.js';
import { waitFor } from './wait.js';

export function uniqueName(prefix: string): string {
  return `${prefix}.${Date.now().toString(36)}.${randomBytes(4).toString('hex')}`;
}

/**
 * A client of the shared stack's broker, or of `brokers` (a test's own broker), with the service's
 * fix of kafkajs's 1 ms request-queue timer (src/kafka/request-queue-timer.ts): tests share two
 * cores with the broker and the services they start.
 */
export function testKafka(clientId = 'test', brokers = stackEnv().KAFKA_BROKERS): Kafka {
  return newKafkaClient({ clientId, brokers: brokers.split(','), logLevel: logLevel.WARN });
}

/** A connected admin client, disconnected when the test ends. */
export async function testAdmin(t: TestContext, kafka = testKafka()): Promise<Admin> {
  const admin = kafka.admin();
  await admin.connect();
  defer(t, () => admin.disconnect());
  return admin;
}

export interface TestTopicOptions {
  /** Default 3. */
  numPartitions?: number;
  configEntries?: { name: string; value: string }[];
}

/**
 * Creates topics and waits until every partition has a leader. On a broker started moments ago,
 * kafkajs's own wait can fail with a retriable "does not host this topic-partition" while the
 * topics are being created (CI saw it once); then what is missing is created again and the
 * topics' metadata is polled until every partition has a leader.
 */
export async function createTopics(
  admin: Admin,
  topics: Parameters<Admin['createTopics']>[0]['topics'],
): Promise<void> {
  try {
    await admin.createTopics({ waitForLeaders: true, topics });
  } catch (err) {
    if (!(err as { retriable?: boolean }).retriable) throw err;
    const names = topics.map((topic) => topic.topic);
    await waitFor(
      async () => {
        const existing = new Set(await admin.listTopics());
        const missing = topics.filter((topic) => !existing.has(topic.topic));
        if (missing.length > 0) await admin.createTopics({ topics: missing }).catch(() => {});
        const { topics: found } = await admin.fetchTopicMetadata({ topics: names });
        return (
          found.length === names.length &&
          found.every((topic) => topic.partitions.length > 0 && topic.partitions.every((p) => p.leader >= 0))
        );
      },
      { what: `leaders for ${names.join(', ')}`, intervalMs: 200 },
    );
  }
}

/** Creates a uniquely named topic and deletes it when the test ends. */
export async function createTestTopic(t: TestContext, admin: Admin, prefix: string, opts: TestTopicOptions = {}) {
  const topic = uniqueName(prefix);
  await createTopics(admin, [
    { topic, numPartitions: opts.numPartitions ?? 3, replicationFactor: 1, configEntries: opts.configEntries },
  ]);
  defer(t, () => admin.deleteTopics({ topics: [topic] }).catch(() => {}));
  return topic;
}
