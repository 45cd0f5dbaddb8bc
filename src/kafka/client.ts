import { Kafka, type KafkaConfig, type LogEntry, logLevel } from 'kafkajs';
import type { Logger, LogLevel } from '../shared/index.js';
import { installRequestQueueTimerFix } from './request-queue-timer.js';

export interface KafkaClientOptions {
  brokers: readonly string[];
  clientId: string;
  log: Logger;
  /** Retries of each request before kafkajs gives up. Default 8 (about 25 s in all). */
  retries?: number;
}

const TRANSIENT =
  /not the leader|does not host this topic-partition|leader not available|coordinator is (loading|not available)|not the correct coordinator|failed to find group coordinator|no longer available|coordinator is not aware of this member/i;

/**
 * Whether a Kafka error is one a healthy cluster shows for a while and kafkajs retries by itself:
 * leadership moving, a coordinator loading (new topics, a broker restart, a cluster's first
 * seconds), or a member the coordinator has dropped (kafkajs rejoins at once). Such a line is a warning, not an error, or every healthy start would page someone.
 */
export function isTransientKafkaError(text: string): boolean {
  return TRANSIENT.test(text);
}

/**
 * The level a kafkajs log line gets in the service's log. kafkajs names the error in `error` on
 * most lines, but a consumer's "Crash: …" line carries it only in its message and `stack`, so all
 * three are read. The "Restarting the consumer in N ms" line that follows a crash names no error:
 * kafkajs restarts only after a retriable one, and the Crash line just before it already has the
 * level its cause deserves, so the restart itself is a warning.
 */
export function kafkaLogLevel(level: logLevel, entry: { message: string; error?: unknown; stack?: unknown }): LogLevel {
  const text = `${entry.message} ${String(entry.error ?? '')} ${String(entry.stack ?? '').split('\n', 1)[0]}`;
  // A heartbeat refused during a rebalance is routine.
  if (/rebalanc/i.test(String(entry.error ?? ''))) return 'info';
  if (entry.message.startsWith('Restarting the consumer')) return 'warn';
  if (isTransientKafkaError(text) || level === logLevel.WARN) return 'warn';
  return level <= logLevel.ERROR ? 'error' : 'info';
}

/**
 * A kafkajs client, with this service's fix of kafkajs installed first (request-queue-timer.ts).
 * Every kafkajs client in the repository is made here: the service's through createKafka, and the
 * bench's, the tests' and the demo's directly, since they share the cores with what they measure
 * or test. The one exception is the naive dispatcher (bench/naive.ts), which stands for a tutorial.
 */
export function newKafkaClient(config: KafkaConfig): Kafka {
  installRequestQueueTimerFix();
  return new Kafka(config);
}

/** A kafkajs client whose logs go through the service's JSON logger. */
export function createKafka(options: KafkaClientOptions): Kafka {
  const log = options.log.child({ component: 'kafkajs' });
  return newKafkaClient({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    retry: { retries: options.retries ?? 8, initialRetryTime: 200, maxRetryTime: 5000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...fields } = entry;
        log[kafkaLogLevel(level, entry)](message, fields);
      },
  });
}
