import { Kafka, type LogEntry, logLevel } from 'kafkajs';
import type { Logger } from '../shared/logger.js';

export interface KafkaClientOptions {
  brokers: readonly string[];
  clientId: string;
  log: Logger;
  /** Retries of each request before kafkajs gives up. Default 8 (about 25 s in all). */
  retries?: number;
}

/** A kafkajs client whose logs go through the service's JSON logger. */
export function createKafka(o: KafkaClientOptions): Kafka {
  const log = o.log.child({ component: 'kafkajs' });
  return new Kafka({
    clientId: o.clientId,
    brokers: [...o.brokers],
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    retry: { retries: o.retries ?? 8, initialRetryTime: 200, maxRetryTime: 5000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...fields } = entry;
        // A heartbeat refused during a rebalance is routine, not an error.
        const routine = /rebalanc/i.test(String(fields.error ?? ''));
        const fn = routine ? log.info : level <= logLevel.ERROR ? log.error : level === logLevel.WARN ? log.warn : log.info;
        fn(message, fields);
      },
  });
}
