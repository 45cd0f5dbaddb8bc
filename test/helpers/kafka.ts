import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { defer } from './defer.js';
import { stackEnv } from './env.js';

export function uniqueName(prefix: string): string {
  return `${prefix}.${Date.now().toString(36)}.${randomBytes(4).toString('hex')}`;
}

/** A client of the shared stack's broker, or of `brokers` (a test's own broker). */
export function testKafka(clientId = 'test', brokers = stackEnv().KAFKA_BROKERS): Kafka {
  return new Kafka({ clientId, brokers: brokers.split(','), logLevel: logLevel.WARN });
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

/** Creates a uniquely named topic and deletes it when the test ends. */
export async function createTestTopic(t: TestContext, admin: Admin, prefix: string, opts: TestTopicOptions = {}) {
  const topic = uniqueName(prefix);
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: opts.numPartitions ?? 3, replicationFactor: 1, configEntries: opts.configEntries }],
  });
  defer(t, () => admin.deleteTopics({ topics: [topic] }).catch(() => {}));
  return topic;
}
