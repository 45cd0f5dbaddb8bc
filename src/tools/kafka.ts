import type { Config } from '../config/index.js';
import { createKafka, createProducer, KafkaWriter } from '../kafka/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Logger } from '../shared/index.js';

/**
 * A tool's Kafka clients: kafkajs to read, and a writer that writes as the dispatcher's does (sizes,
 * retries, acks=all). `close` closes the writer's producer.
 */
export function toolKafka(config: Config, clientId: string, log: Logger, metrics: Metrics) {
  const producer = createProducer({ brokers: config.kafka.brokers, clientId });
  return {
    kafka: createKafka({ brokers: config.kafka.brokers, clientId, log }),
    writer: new KafkaWriter({
      transport: producer,
      metrics,
      log,
      isStopping: () => false,
      maxRequestBytes: config.kafka.maxMessageBytes,
    }),
    close: () => producer.close().catch(() => {}),
  };
}
