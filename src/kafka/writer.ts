import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Message, TopicMessages } from 'kafkajs';
import type { Metrics } from '../metrics/index.js';
import { BlueWebhooksError, errorCode, type Logger, retryWhileRetriable } from '../shared/index.js';
import { isRecordTooLarge, kafkaError } from './errors.js';
import type { ProduceTransport } from './producer.js';

const gzip = promisify(zlib.gzip);

export interface KafkaWriterOptions {
  /** Sends the produce requests (src/kafka/producer.ts). */
  transport: ProduceTransport;
  metrics: Metrics;
  log: Logger;
  isStopping: () => boolean;
  /** Largest produce request, in bytes as estimated here (KAFKA_MAX_MESSAGE_BYTES). */
  maxRequestBytes: number;
  /** Most messages in one produce request. Default 1000. */
  maxBatch?: number;
  /** Produce requests under way at once. Default 4. */
  maxConcurrentSends?: number;
}

interface Sized {
  topic: string;
  message: Message;
  bytes: number;
}

interface Pending extends Sized {
  resolve: () => void;
  reject: (err: unknown) => void;
}

// Record and batch framing that the estimate adds to each message (a generous bound).
const MESSAGE_OVERHEAD = 64;

/** Estimated bytes of one message in a produce request. */
export function messageBytes(m: Message): number {
  let n = MESSAGE_OVERHEAD + byteLength(m.key) + byteLength(m.value);
  for (const [k, v] of Object.entries(m.headers ?? {})) n += k.length + byteLength(v as Buffer | string | undefined);
  return n;
}

function byteLength(v: Buffer | string | null | undefined | (Buffer | string)[]): number {
  if (v === null || v === undefined) return 0;
  if (Array.isArray(v)) return v.reduce((n, x) => n + byteLength(x), 0);
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

/**
 * Every Kafka write of the service goes through here: what is written in the same turn of the
 * event loop (outcomes, retries, dead letters, status changes, for any topic) leaves in as few
 * produce requests as fit. `write` resolves only once Kafka has acknowledged the message
 * (acks=all), which is what lets callers commit source offsets.
 *
 * Why sizes are handled here: the broker refuses a whole produce request that is over its
 * `message.max.bytes` (or the topic's `max.message.bytes`) with MESSAGE_TOO_LARGE, and that never
 * succeeds however often it is retried. A burst of retry records (each carries its 2 KB event, and
 * all of one webhook share a partition) used to become one 2 MB request that was retried forever,
 * wedging every delivery waiting on it. So:
 * - requests are cut at `maxRequestBytes` (and `maxBatch` messages);
 * - a single message over the bound is compressed (gzip) and sent alone when that makes it fit;
 * - a message that cannot fit even so is rejected at once with the final RECORD_TOO_LARGE, and so
 *   is one the broker still refuses on its own (a topic with a smaller limit); a refused request of
 *   several messages is split in halves and each half is tried again;
 * - other Kafka trouble (broker down, leader moving, authorization) waits and retries: the write
 *   is never dropped, and a long wait shows as a stall of the partition that waits on it.
 */
export class KafkaWriter {
  private queue: Pending[] = [];
  private sending = 0;
  private scheduled = false;

  constructor(private readonly options: KafkaWriterOptions) {}

  write(topic: string, message: Message): Promise<void> {
    const bytes = messageBytes(message);
    if (bytes > this.options.maxRequestBytes) return this.writeLarge(topic, message, bytes);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, message, bytes, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Writes `message`, or `smaller()` instead when the message can never fit (RECORD_TOO_LARGE):
   * how dead letters are always written, with what could not be kept left out.
   */
  async writeOrSmaller(topic: string, message: Message, smaller: () => Message): Promise<void> {
    await this.write(topic, message).catch((err: unknown) => {
      if (errorCode(err) !== 'RECORD_TOO_LARGE') throw err;
      return this.write(topic, smaller());
    });
  }

  /** A message over the request bound: alone and compressed if that fits, else RECORD_TOO_LARGE. */
  private async writeLarge(topic: string, message: Message, bytes: number): Promise<void> {
    const value = message.value === null || message.value === undefined ? Buffer.alloc(0) : Buffer.from(message.value);
    const compressed = messageBytes({ ...message, value: await gzip(value) });
    if (compressed > this.options.maxRequestBytes)
      throw tooLarge(topic, bytes, compressed, this.options.maxRequestBytes);
    await this.produce([{ topic, message, bytes: compressed }], 'gzip');
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.queue.length > 0 && this.sending < (this.options.maxConcurrentSends ?? 4)) {
        void this.send(this.takeRequest());
      }
    });
  }

  /** The next messages of the queue that fit in one request (always at least one). */
  private takeRequest(): Pending[] {
    const maxBatch = this.options.maxBatch ?? 1000;
    let n = 0;
    let bytes = 0;
    while (
      n < this.queue.length &&
      n < maxBatch &&
      (n === 0 || bytes + this.queue[n]!.bytes <= this.options.maxRequestBytes)
    ) {
      bytes += this.queue[n]!.bytes;
      n++;
    }
    return this.queue.splice(0, n);
  }

  /** Sends one request of queued messages and settles each of them. */
  private async send(batch: Pending[]): Promise<void> {
    this.sending++;
    try {
      await this.produce(batch, 'none');
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.sending--;
      if (this.queue.length > 0) this.schedule();
    }
  }

  private async produce(batch: Sized[], compression: 'none' | 'gzip'): Promise<void> {
    const byTopic = new Map<string, Message[]>();
    for (const p of batch) {
      const list = byTopic.get(p.topic) ?? [];
      list.push(p.message);
      byTopic.set(p.topic, list);
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    const what = `writing ${batch.length} messages to ${[...byTopic.keys()].join(', ')}`;
    try {
      await retryWhileRetriable(
        async () => {
          try {
            await this.options.transport.send(topicMessages, compression);
          } catch (err) {
            // Too large for the broker: final here, handled below by splitting.
            if (isRecordTooLarge(err)) throw err;
            throw kafkaError(what, err);
          }
        },
        {
          isStopping: this.options.isStopping,
          maxMs: 2000,
          onRetry: (err, attempt) => {
            this.options.metrics.infraRetries.inc({ code: err.code });
            if (attempt === 1 || attempt % 10 === 0)
              this.options.log.warn('messages not written yet; retrying', { error: err.message, attempt });
          },
        },
      );
    } catch (err) {
      if (!isRecordTooLarge(err)) throw err;
      if (batch.length === 1) throw tooLarge(batch[0]!.topic, batch[0]!.bytes, null, this.options.maxRequestBytes, err);
      // The broker's limit is below ours (a topic set smaller): halve until each part fits.
      const half = Math.ceil(batch.length / 2);
      await Promise.all([
        this.produce(batch.slice(0, half), compression),
        this.produce(batch.slice(half), compression),
      ]);
    }
  }
}

function tooLarge(
  topic: string,
  bytes: number,
  compressed: number | null,
  limit: number,
  cause?: unknown,
): BlueWebhooksError {
  const size = compressed === null ? `${bytes} bytes` : `${bytes} bytes (${compressed} compressed)`;
  const why = cause ? 'the broker refused it as too large' : `over KAFKA_MAX_MESSAGE_BYTES (${limit})`;
  return new BlueWebhooksError('RECORD_TOO_LARGE', `a ${size} record for ${topic} can never be written: ${why}`, {
    cause,
  });
}
