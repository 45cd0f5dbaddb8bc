export { drainUntil } from './drain.js';
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
export { createLogger, type Logger, type LogLevel, redactBody, redactText } from './logger.js';
export { LoopDelay } from './loop-delay.js';
export { RecentKeys } from './recent-keys.js';
export {
  ALL_BUCKETS,
  bucketOf,
  bucketPrefix,
  createRedisClient,
  type RedisClient,
  redisError,
  runScript,
  type ScriptDefinition,
  withScripts,
} from './redis.js';
export { type BackoffOptions, backoffMs, retryWhileRetriable, type UntilDone } from './retry.js';
export { Semaphore } from './semaphore.js';
export { malformedStringPath, parseRfc3339 } from './text.js';
