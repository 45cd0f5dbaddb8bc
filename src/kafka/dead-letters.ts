import type { IHeaders, KafkaMessage } from 'kafkajs';
import type { ErrorCode, Logger } from '../shared/index.js';
import type { KafkaWriter } from './writer.js';

export interface DeadLettersOptions {
  writer: KafkaWriter;
  /** The DLQ topic. */
  topic: string;
  /** Counts one record written, by reason. */
  count: (reason: ErrorCode) => void;
  log: Logger;
}

/** Where the record came from. */
export interface RecordOrigin {
  topic: string;
  partition: number;
}

/**
 * Copies a record that cannot be handled to a dead-letter topic: the original key, value and
 * headers, plus why and where from in `x-dlq-*` headers. Resolves once Kafka has the copy, so the
 * source offset may be committed; a broker outage makes it wait, never drop. A value too large for
 * the DLQ topic even compressed is left out (`x-dlq-value-omitted: too_large`): the headers then
 * point at the record, which stays readable in its source topic for its retention.
 */
export class DeadLetters {
  constructor(private readonly options: DeadLettersOptions) {}

  async write(m: KafkaMessage, from: RecordOrigin, reason: ErrorCode, detail: string): Promise<void> {
    const error = detail.slice(0, 1000);
    this.options.log.warn('record dead-lettered', {
      dlq: this.options.topic,
      topic: from.topic,
      partition: from.partition,
      offset: m.offset,
      reason,
      error,
    });
    const headers: IHeaders = {
      ...m.headers,
      'x-dlq-reason': reason,
      'x-dlq-error': error,
      'x-dlq-source-topic': from.topic,
      'x-dlq-source-partition': String(from.partition),
      'x-dlq-source-offset': m.offset,
      'x-dlq-source-timestamp': m.timestamp,
      'x-dlq-time': new Date().toISOString(),
    };
    await this.options.writer.writeOrSmaller(this.options.topic, { key: m.key, value: m.value, headers }, () => ({
      key: m.key,
      value: null,
      headers: { ...headers, 'x-dlq-value-omitted': 'too_large' },
    }));
    this.options.count(reason);
  }
}
