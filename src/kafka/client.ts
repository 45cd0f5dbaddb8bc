import { Kafka, type LogEntry, logLevel } from 'kafkajs';
import type { Logger } from '../shared/index.js';

export interface KafkaClientOptions {
  brokers: readonly string[];
  clientId: string;
  log: Logger;
  /** Retries of each request before kafkajs gives up. Default 8 (about 25 s in all). */
  retries?: number;
}

const TRANSIENT =
  /not the leader|does not host this topic-partition|leader not available|coordinator is (loading|not available)|not the correct coordinator|no longer available/i;

/** A kafkajs client whose logs go through the service's JSON logger. */
export function createKafka(options: KafkaClientOptions): Kafka {
  const log = options.log.child({ component: 'kafkajs' });
  return new Kafka({
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
        // A heartbeat refused during a rebalance is routine, not an error; leadership moving or a
        // coordinator loading (new topics, a broker restart) is transient: kafkajs retries it.
        const error = String(fields.error ?? '');
        const routine = /rebalanc/i.test(error);
        const transient = TRANSIENT.test(error);
        const fn = routine
          ? log.info
          : transient || level === logLevel.WARN
            ? log.warn
            : level <= logLevel.ERROR
              ? log.error
              : log.info;
        fn(message, fields);
      },
  });
}
