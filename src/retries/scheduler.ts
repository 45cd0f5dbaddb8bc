import type { KafkaWriter } from '../kafka/index.js';
import type { Metrics } from '../metrics/index.js';
import { encodeRetry, type RetryRecord, type RetryTiers } from './record.js';

export interface RetrySchedulerOptions {
  writer: KafkaWriter;
  tiers: RetryTiers;
  /** DELIVERY_DLQ_TOPIC. */
  dlqTopic: string;
  metrics: Metrics;
}

/** Writes retries to their delay topic and exhausted deliveries to the deliveries DLQ, durably. */
export class RetryScheduler {
  constructor(private readonly options: RetrySchedulerOptions) {}

  schedule(r: RetryRecord, delayMs: number): Promise<void> {
    return this.options.writer.write(this.options.tiers.topicFor(delayMs), { key: r.webhookId, value: encodeRetry(r) });
  }

  /**
   * A record too large to keep whole is kept without its event's currentValue and previousValue,
   * marked `omitted`, with `source` pointing at the event: a dead letter is always written.
   */
  async deadLetter(r: RetryRecord): Promise<void> {
    await this.options.writer.writeOrSmaller(
      this.options.dlqTopic,
      { key: r.webhookId, value: encodeRetry(r) },
      () => ({
        key: r.webhookId,
        value: encodeRetry({
          ...r,
          event: { ...r.event, currentValue: null, previousValue: null },
          omitted: 'too_large',
        }),
      }),
    );
    this.options.metrics.deliveriesDeadLettered.inc();
  }
}
