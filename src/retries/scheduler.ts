import type { Producer } from 'kafkajs';
import type { Metrics } from '../metrics/metrics.js';
import { kafkaError } from '../shared/kafka-errors.js';
import { retryWhileRetriable } from '../shared/retry.js';
import { encodeRetry, type RetryRecord, type RetryTiers } from './record.js';

export interface RetrySchedulerOptions {
  producer: Producer;
  tiers: RetryTiers;
  /** DELIVERY_DLQ_TOPIC. */
  dlqTopic: string;
  metrics: Metrics;
  isStopping: () => boolean;
}

/** Writes retries to their delay topic and exhausted deliveries to the deliveries DLQ, durably. */
export class RetryScheduler {
  constructor(private readonly o: RetrySchedulerOptions) {}

  async schedule(r: RetryRecord, delayMs: number): Promise<void> {
    await this.send(this.o.tiers.topicFor(delayMs), r);
  }

  async deadLetter(r: RetryRecord): Promise<void> {
    await this.send(this.o.dlqTopic, r);
    this.o.metrics.deliveriesDeadLettered.inc();
  }

  private send(topic: string, r: RetryRecord): Promise<void> {
    return retryWhileRetriable(
      async () => {
        try {
          await this.o.producer.send({ topic, acks: -1, messages: [{ key: r.webhookId, value: encodeRetry(r) }] });
        } catch (err) {
          throw kafkaError(`writing to ${topic}`, err);
        }
      },
      { isStopping: this.o.isStopping, maxMs: 2000, onRetry: (e) => this.o.metrics.infraRetries.inc({ code: e.code }) },
    );
  }
}
