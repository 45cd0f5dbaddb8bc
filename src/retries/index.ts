export { type Decision, decide, formatDuration, isRetriableOutcome, type RetryPolicyOptions } from './policy.js';
export { decodeRetry, encodeRetry, type RetryRecord, RetryTiers } from './record.js';
export { type RedriveOptions, type RedriveReport, redrive } from './redrive.js';
export { RetryScheduler, type RetrySchedulerOptions } from './scheduler.js';
