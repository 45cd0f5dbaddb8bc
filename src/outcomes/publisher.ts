import type { Producer } from 'kafkajs';
import type { Type } from 'avsc';
import type { Registry, SchemaName } from '../codec/registry.js';
import type { Metrics } from '../metrics/metrics.js';
import { kafkaError } from '../shared/kafka-errors.js';
import type { Logger } from '../shared/logger.js';
import { retryWhileRetriable } from '../shared/retry.js';

export interface AvroPublisherOptions {
  producer: Producer;
  registry: Registry;
  /** The schema, registered under "<topic>-value". */
  schema: SchemaName;
  topic: string;
  log: Logger;
  metrics: Metrics;
  isStopping: () => boolean;
  /** Most records in one produce request. Default 1000. */
  maxBatch?: number;
  /** Produce requests under way at once. Default 4. */
  maxConcurrentSends?: number;
}

interface Pending {
  key: string;
  value: Buffer;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Publishes Avro records (outcomes, endpoint status) to one topic in batches. `publish` resolves
 * only once Kafka has acknowledged the record (acks=all), which is what lets the caller commit the
 * event's offset. A broker outage makes it wait and retry; it never drops a record.
 */
export class AvroPublisher<T extends object> {
  private type: Type | null = null;
  private header = Buffer.alloc(5);
  private queue: Pending[] = [];
  private sending = 0;
  private scheduled = false;

  constructor(private readonly o: AvroPublisherOptions) {}

  /** Registers the schema under "<topic>-value". */
  async start(): Promise<void> {
    const id = await this.o.registry.register(this.o.schema, `${this.o.topic}-value`);
    this.type = (await this.o.registry.client.getSchema(id)) as unknown as Type;
    this.header.writeUInt8(0, 0);
    this.header.writeInt32BE(id, 1);
  }

  publish(key: string, record: T): Promise<void> {
    if (!this.type) throw new Error('AvroPublisher.start() was not called');
    const value = Buffer.concat([this.header, this.type.toBuffer(record)]);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ key, value, resolve, reject });
      this.schedule();
    });
  }

  /** Records waiting or under way. */
  get pending(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // One tick of batching: everything published in the same turn of the event loop goes together.
    setImmediate(() => {
      this.scheduled = false;
      while (this.queue.length > 0 && this.sending < (this.o.maxConcurrentSends ?? 4)) {
        void this.send(this.queue.splice(0, this.o.maxBatch ?? 1000));
      }
    });
  }

  private async send(batch: Pending[]): Promise<void> {
    this.sending++;
    try {
      await retryWhileRetriable(
        async () => {
          try {
            await this.o.producer.send({
              topic: this.o.topic,
              acks: -1,
              messages: batch.map((p) => ({ key: p.key, value: p.value })),
            });
          } catch (err) {
            throw kafkaError(`publishing ${batch.length} records to ${this.o.topic}`, err);
          }
        },
        {
          isStopping: this.o.isStopping,
          maxMs: 2000,
          onRetry: (err, attempt) => {
            this.o.metrics.infraRetries.inc({ code: err.code });
            if (attempt === 1 || attempt % 10 === 0) this.o.log.warn('records not published yet; retrying', { topic: this.o.topic, error: err.message, attempt });
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
