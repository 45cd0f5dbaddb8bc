export { EventDeadLetters, type EventDeadLettersOptions } from './dead-letters.js';
export { EventConsumer, type EventConsumerOptions } from './event-consumer.js';
export { OffsetEntry, PartitionTracker } from './offset-tracker.js';
export { type BatchInput, EventPipeline, type EventPipelineDeps, subscriptionMatches } from './pipeline.js';
