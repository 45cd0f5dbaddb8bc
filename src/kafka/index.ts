export { createKafka, type KafkaClientOptions, newKafkaClient } from './client.js';
export { DeadLetters, type DeadLettersOptions, type RecordOrigin } from './dead-letters.js';
export { isRecordTooLarge, kafkaError } from './errors.js';
export { finishWhenDurable, OffsetEntry, PartitionTracker } from './offset-tracker.js';
export { silenceKafkajsTimerWarning } from './process-warnings.js';
export { createProducer, type ProducerOptions, type ProduceTransport } from './producer.js';
export { KafkaReadiness, type KafkaReadinessOptions } from './readiness.js';
export { copyDeadLetters, type DeadLetterCopyOptions, readRecordAt, type ScanOptions, scanRange } from './scan.js';
export { SupervisedConsumer, type SupervisedConsumerOptions } from './supervised-consumer.js';
export { ensureTopics, serviceTopics, type TopicSpec } from './topics.js';
export {
  type BatchContext,
  type BatchHandler,
  TrackedConsumer,
  type TrackedConsumerOptions,
} from './tracked-consumer.js';
export { KafkaWriter, type KafkaWriterOptions } from './writer.js';
