export {
  type Decision,
  decide,
  formatDuration,
  isRetriableOutcome,
  nextOnSchedule,
  type RetryPolicyOptions,
} from './policy.js';
export { decodeRetry, encodeRetry, type RetryRecord, RetryTiers } from './record.js';
export { RetryScheduler, type RetrySchedulerOptions } from './scheduler.js';
