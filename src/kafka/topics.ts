import type { Admin } from 'kafkajs';
import type { Config } from '../config/index.js';
import type { Logger } from '../shared/index.js';
import { kafkaError } from './errors.js';

export interface TopicSpec {
  topic: string;
  configEntries?: { name: string; value: string }[];
}

/** The topics the dispatcher reads and writes. */
export function serviceTopics(config: Config, retryTopics: readonly string[]): TopicSpec[] {
  const t = config.topics;
  return [
    { topic: t.events },
    { topic: t.subscriptions, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
    { topic: t.results },
    { topic: t.dlq },
    { topic: config.retries.dlqTopic },
    { topic: config.health.statusTopic },
    ...retryTopics.map((topic) => ({ topic })),
  ];
}

/** Creates the topics that are missing. Existing topics are never altered. */
export async function ensureTopics(admin: Admin, specs: TopicSpec[], config: Config, log: Logger): Promise<void> {
  try {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.topic));
    if (missing.length === 0) return;
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((s) => ({
        topic: s.topic,
        numPartitions: config.kafka.topicPartitions,
        replicationFactor: config.kafka.topicReplicationFactor,
        configEntries: s.configEntries,
      })),
    });
    log.info('created missing topics', { topics: missing.map((s) => s.topic) });
  } catch (err) {
    // Another replica may have created them at the same moment; anything else is worth a retry.
    const now = new Set(await admin.listTopics().catch(() => [] as string[]));
    if (specs.every((s) => now.has(s.topic))) return;
    throw kafkaError('creating topics', err);
  }
}
