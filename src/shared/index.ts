export { ALL_BUCKETS, bucketOf, bucketPrefix, createRedisClient, type RedisClient, redisError } from './redis.js';
export { backoffMs, type BackoffOptions, retryWhileRetriable } from './retry.js';
export { BlueWebhooksError, type ErrorCode, errorCode, errorMessage, isShuttingDown, jsonParseProblem, type Stage } from './errors.js';
export { createLogger, type Logger, type LogLevel } from './logger.js';
export { RecentKeys } from './recent-keys.js';
export { Semaphore } from './semaphore.js';
export { isRecordTooLarge, kafkaError } from './kafka-errors.js';
export { silenceKafkajsTimerWarning } from './process-warnings.js';
