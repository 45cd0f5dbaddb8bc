export { EventDeadLetters, type EventDeadLettersOptions } from './dead-letters.js';
export { finishOnSuccess, OffsetEntry, PartitionTracker } from './offset-tracker.js';
export { EventPipeline, type EventPipelineDeps, filterContext, subscriptionMatches } from './pipeline.js';
