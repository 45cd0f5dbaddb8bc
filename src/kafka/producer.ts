import { CompressionAlgorithms, compatibilityPartitioner, ProduceAcks, Producer } from '@platformatic/kafka';
import type { IHeaders, Message, TopicMessages } from 'kafkajs';

/**
 * One produce request, acks=all: resolves once the broker has acknowledged every record, and
 * rejects with the client's own error otherwise (the writer decides what is final and what waits).
 */
export interface ProduceTransport {
  send(topicMessages: TopicMessages[], compression: 'none' | 'gzip'): Promise<void>;
  close(): Promise<void>;
}

export interface ProducerOptions {
  brokers: readonly string[];
  clientId: string;
}

/**
 * The service's producer is @platformatic/kafka's, while its consumers are kafkajs's: it costs
 * much less CPU per record for outcome-sized writes (`npm run bench:clients`,
 * docs/performance.md#method-and-dated-runs), and reading is as fast or faster with kafkajs, whose
 * consumer the offset tracking and the rebalance drain are built on.
 * - No retries of its own: the writer waits and retries (retryWhileRetriable), counted and logged.
 * - Not idempotent, as the kafkajs producer was: copies from a retried request are skipped by the
 *   retry handler's recent keys, and outcomes are at-least-once anyway.
 * - Keys go to the partitions the Java client (and kafkajs's default partitioner) picks, so a
 *   webhook's records stay on the partition they were on before.
 */
export function createProducer(options: ProducerOptions): ProduceTransport {
  const producer = new Producer({
    clientId: options.clientId,
    bootstrapBrokers: [...options.brokers],
    acks: ProduceAcks.ALL,
    idempotent: false,
    retries: 0,
    autocreateTopics: false,
    partitioner: compatibilityPartitioner,
    connectTimeout: 3000,
    timeout: 30_000,
  });
  return {
    async send(topicMessages, compression) {
      await producer.send({
        messages: topicMessages.flatMap(({ topic, messages }) => messages.map((m) => toRecord(topic, m))),
        compression: compression === 'gzip' ? CompressionAlgorithms.GZIP : CompressionAlgorithms.NONE,
      });
    },
    close: () => producer.close(),
  };
}

function toRecord(topic: string, m: Message) {
  return {
    topic,
    key: toBuffer(m.key),
    value: toBuffer(m.value),
    ...(m.headers ? { headers: toHeaders(m.headers) } : {}),
  };
}

function toBuffer(v: Buffer | string | null | undefined): Buffer | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'string' ? Buffer.from(v) : v;
}

/** kafkajs's header shape (a value may be a list: one header each) as the client takes them. */
function toHeaders(headers: IHeaders): Map<Buffer, Buffer> {
  const out = new Map<Buffer, Buffer>();
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      const buffer = toBuffer(v);
      if (buffer) out.set(Buffer.from(name), buffer);
    }
  }
  return out;
}
