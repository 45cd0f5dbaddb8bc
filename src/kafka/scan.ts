import { randomBytes } from 'node:crypto';
import type { Kafka, KafkaMessage, Message } from 'kafkajs';
import { BlueWebhooksError } from '../shared/index.js';
import type { KafkaWriter } from './writer.js';

export interface ScanOptions {
  kafka: Kafka;
  topic: string;
  /** Names the throwaway consumer group, for people reading the broker's group list. */
  purpose: string;
  /** Where each partition starts: a timestamp (ms) looked up on the broker, or the beginning. Default the beginning. */
  fromMs?: number;
  /** Where each partition ends (exclusive): the first offset at this timestamp, or the end as it is at the start of the scan. */
  toMs?: number;
  /** The messages of one partition in its range, in order; batches of a partition never overlap. */
  each: (messages: KafkaMessage[], partition: number) => Promise<void>;
}

/**
 * Reads a topic over a range of offsets, every partition, once, and returns when all of them are
 * done. The range is fixed when the scan starts, so records written meanwhile are left for a later
 * scan. Nothing is committed: the group is throwaway, and the scan can be run again.
 */
export async function scanRange(options: ScanOptions): Promise<void> {
  const admin = options.kafka.admin();
  const consumer = options.kafka.consumer({
    groupId: `blue-webhooks.${options.purpose}.${randomBytes(6).toString('hex')}`,
    maxWaitTimeInMs: 200,
    maxBytes: 16 * 1024 * 1024,
  });
  await Promise.all([admin.connect(), consumer.connect()]);
  try {
    const starts =
      options.fromMs === undefined
        ? await admin.fetchTopicOffsets(options.topic)
        : await admin.fetchTopicOffsetsByTimestamp(options.topic, options.fromMs);
    const ends =
      options.toMs === undefined
        ? new Map((await admin.fetchTopicOffsets(options.topic)).map((p) => [p.partition, Number(p.high)]))
        : new Map(
            (await admin.fetchTopicOffsetsByTimestamp(options.topic, options.toMs)).map((p) => [
              p.partition,
              Number(p.offset),
            ]),
          );
    const startOf = (p: (typeof starts)[number]) => Number('low' in p ? p.low : p.offset);
    const remaining = new Set(starts.filter((p) => startOf(p) < ends.get(p.partition)!).map((p) => p.partition));
    if (remaining.size === 0) return;
    await new Promise<void>((resolve, reject) => {
      consumer
        .subscribe({ topic: options.topic })
        .then(() =>
          consumer.run({
            autoCommit: false,
            eachBatch: async ({ batch }) => {
              try {
                if (!remaining.has(batch.partition)) return;
                const end = ends.get(batch.partition)!;
                const inRange = batch.messages.filter((m) => Number(m.offset) < end);
                if (inRange.length > 0) await options.each(inRange, batch.partition);
                if (inRange.length < batch.messages.length || Number(batch.lastOffset()) + 1 >= end)
                  remaining.delete(batch.partition);
                if (remaining.size === 0) resolve();
              } catch (err) {
                reject(err);
              }
            },
          }),
        )
        .then(() => {
          // A new group starts at the end; each partition is moved to the start of its range.
          for (const p of starts)
            if (remaining.has(p.partition))
              consumer.seek({ topic: options.topic, partition: p.partition, offset: String(startOf(p)) });
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

/**
 * The record at one offset of one partition, or null when the topic no longer has it (retention or
 * compaction moved past it) or never had it. Reads with a throwaway group, nothing committed.
 * Throws a BlueWebhooksError (KAFKA_UNAVAILABLE, retriable) when Kafka does not answer within `timeoutMs`.
 */
export async function readRecordAt(
  kafka: Kafka,
  at: { topic: string; partition: number; offset: string },
  timeoutMs: number,
): Promise<KafkaMessage | null> {
  const admin = kafka.admin();
  const consumer = kafka.consumer({
    groupId: `blue-webhooks.read-one.${randomBytes(6).toString('hex')}`,
    maxWaitTimeInMs: 100,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.all([admin.connect(), consumer.connect()]);
    const partition = (await admin.fetchTopicOffsets(at.topic)).find((p) => p.partition === at.partition);
    const offset = BigInt(at.offset);
    if (!partition || offset < BigInt(partition.low) || offset >= BigInt(partition.high)) return null;
    return await new Promise<KafkaMessage | null>((resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new BlueWebhooksError('KAFKA_UNAVAILABLE', `reading ${at.topic}/${at.partition}@${at.offset}: no answer`, {
              retriable: true,
            }),
          ),
        timeoutMs,
      );
      consumer
        .subscribe({ topic: at.topic })
        .then(() =>
          consumer.run({
            autoCommit: false,
            eachBatch: async ({ batch }) => {
              if (batch.partition !== at.partition) return;
              // Compaction may have removed it: the first record at or past the offset says so.
              const m = batch.messages.find((x) => BigInt(x.offset) >= offset);
              if (m) resolve(m.offset === at.offset ? m : null);
            },
          }),
        )
        .then(() => consumer.seek({ topic: at.topic, partition: at.partition, offset: at.offset }))
        .catch(reject);
    });
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

export interface DeadLetterCopyOptions {
  kafka: Kafka;
  writer: KafkaWriter;
  /** The dead-letter topic, read up to its end as it is when the copy starts. */
  topic: string;
  purpose: string;
  /** Epoch ms: only records dead-lettered (written) in [fromMs, toMs]. */
  fromMs?: number;
  toMs?: number;
  /** Ask `copy` about every record (so it can count), write nothing. */
  dryRun?: boolean;
  /** What to write back for one dead letter in the time range; null to leave it. */
  copy: (m: KafkaMessage) => { topic: string; message: Message } | null;
}

/** The common part of every re-drive: scan a dead-letter topic, copy the chosen records back. */
export async function copyDeadLetters(options: DeadLetterCopyOptions): Promise<{ scanned: number; copied: number }> {
  const counts = { scanned: 0, copied: 0 };
  await scanRange({
    kafka: options.kafka,
    topic: options.topic,
    purpose: options.purpose,
    each: async (messages) => {
      const writes: Promise<void>[] = [];
      for (const m of messages) {
        counts.scanned++;
        const at = Number(m.timestamp);
        if ((options.fromMs !== undefined && at < options.fromMs) || (options.toMs !== undefined && at > options.toMs))
          continue;
        const out = options.copy(m);
        if (out && !options.dryRun) writes.push(options.writer.write(out.topic, out.message));
      }
      await Promise.all(writes);
      counts.copied += writes.length;
    },
  });
  return counts;
}
