import type { Message, Producer, TopicMessages } from 'kafkajs';
import type { Metrics } from '../metrics/metrics.js';
import { kafkaError } from '../shared/kafka-errors.js';
import type { Logger } from '../shared/logger.js';
import { retryWhileRetriable } from '../shared/retry.js';

export interface KafkaWriterOptions {
  producer: Producer;
  metrics: Metrics;
  log: Logger;
  isStopping: () => boolean;
  /** Most messages in one produce request. Default 1000. */
  maxBatch?: number;
  /** Produce requests under way at once. Default 4. */
  maxConcurrentSends?: number;
}

interface Pending {
  topic: string;
  message: Message;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Every Kafka write of the service goes through here: what is written in the same turn of the
 * event loop (outcomes, retries, dead letters, status changes, for any topic) leaves in one
 * produce request. `write` resolves only once Kafka has acknowledged the message (acks=all), which
 * is what lets callers commit source offsets. A broker outage makes it wait and retry; it never
 * drops a message.
 */
export class KafkaWriter {
  private queue: Pending[] = [];
  private sending = 0;
  private scheduled = false;

  constructor(private readonly o: KafkaWriterOptions) {}

  write(topic: string, message: Message): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, message, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.queue.length > 0 && this.sending < (this.o.maxConcurrentSends ?? 4)) {
        void this.send(this.queue.splice(0, this.o.maxBatch ?? 1000));
      }
    });
  }

  private async send(batch: Pending[]): Promise<void> {
    this.sending++;
    const byTopic = new Map<string, Message[]>();
    for (const p of batch) {
      const list = byTopic.get(p.topic) ?? [];
      list.push(p.message);
      byTopic.set(p.topic, list);
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    try {
      await retryWhileRetriable(
        async () => {
          try {
            await this.o.producer.sendBatch({ acks: -1, topicMessages });
          } catch (err) {
            throw kafkaError(`writing ${batch.length} messages to ${[...byTopic.keys()].join(', ')}`, err);
          }
        },
        {
          isStopping: this.o.isStopping,
          maxMs: 2000,
          onRetry: (err, attempt) => {
            this.o.metrics.infraRetries.inc({ code: err.code });
            if (attempt === 1 || attempt % 10 === 0) this.o.log.warn('messages not written yet; retrying', { error: err.message, attempt });
          },
        },
      );
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.sending--;
      if (this.queue.length > 0) this.schedule();
    }
  }
}
