import type { IHeaders, KafkaMessage } from 'kafkajs';
import type { KafkaWriter } from '../kafka/writer.js';
import type { Metrics } from '../metrics/metrics.js';
import { BlueWebhooksError, errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';

export interface EventDeadLettersOptions {
  writer: KafkaWriter;
  /** DLQ_TOPIC. */
  topic: string;
  sourceTopic: string;
  metrics: Metrics;
  log: Logger;
}

/**
 * Writes events that can never be decoded to the events DLQ: the original key, value and headers,
 * plus the reason in `x-dlq-*` headers. Resolves once Kafka has the record, so the offset may be
 * committed; a broker outage makes it wait, never drop.
 */
export class EventDeadLetters {
  constructor(private readonly o: EventDeadLettersOptions) {}

  async write(m: KafkaMessage, partition: number, err: unknown): Promise<void> {
    const code = err instanceof BlueWebhooksError ? err.code : 'DECODE_FAILED';
    const reason = errorMessage(err).slice(0, 1000);
    this.o.metrics.decodeErrors.inc({ reason: code });
    this.o.log.warn('event dead-lettered', { partition, offset: m.offset, code, reason });
    const headers: IHeaders = {
      ...m.headers,
      'x-dlq-reason': code,
      'x-dlq-error': reason,
      'x-dlq-source-topic': this.o.sourceTopic,
      'x-dlq-source-partition': String(partition),
      'x-dlq-source-offset': m.offset,
      'x-dlq-source-timestamp': m.timestamp,
      'x-dlq-time': new Date().toISOString(),
    };
    await this.o.writer.write(this.o.topic, { key: m.key, value: m.value, headers });
    this.o.metrics.eventsDeadLettered.inc({ reason: code });
  }
}
