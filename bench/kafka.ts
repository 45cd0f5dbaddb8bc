// The bench's own kafkajs clients, with the fix the service installs (newKafkaClient): without it
// each of their connections checks its request queue once a millisecond for as long as it lives,
// 3-5% of a core for the harness's idle admin and producer, taken from the two cores the measured
// processes run on. The naive dispatcher (bench/naive.ts) keeps plain kafkajs, as the tutorial it
// stands for would.
import { type Kafka, logLevel } from 'kafkajs';
import { newKafkaClient } from '../src/kafka/index.js';

/** A kafkajs client of `brokers` (comma-separated) that logs nothing. */
export function benchKafka(brokers: string, clientId = 'bench'): Kafka {
  return newKafkaClient({ clientId, brokers: brokers.split(','), logLevel: logLevel.NOTHING });
}
