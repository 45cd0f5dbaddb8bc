export { createKafka, type KafkaClientOptions } from './client.js';
export { ensureTopics, serviceTopics, type TopicSpec } from './topics.js';
