export {
  BlueWebhooksError,
  ERROR_CODES,
  type ErrorCode,
  errorCode,
  errorMessage,
  isErrorCode,
  isShuttingDown,
  jsonParseProblem,
  type Stage,
} from './errors.js';
export { type ListeningServer, listen } from './http-server.js';
export { isRecordTooLarge, kafkaError } from './kafka-errors.js';
export { createLogger, type Logger, type LogLevel, redactBody, redactText } from './logger.js';
export { LoopDelay } from './loop-delay.js';
export { silenceKafkajsTimerWarning } from './process-warnings.js';
export { RecentKeys } from './recent-keys.js';
export {
  ALL_BUCKETS,
  bucketOf,
  bucketPrefix,
  createRedisClient,
  type RedisClient,
  redisError,
  runScript,
} from './redis.js';
export { type BackoffOptions, backoffMs, retryWhileRetriable } from './retry.js';
export { Semaphore } from './semaphore.js';
export { malformedStringPath, parseRfc3339 } from './text.js';
