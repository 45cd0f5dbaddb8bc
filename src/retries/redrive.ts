// Re-drives dead-lettered deliveries: reads the deliveries DLQ up to its current end, picks the
// records that match, and puts them back on the first retry topic, due now, with a fresh retry
// schedule. A running dispatcher then delivers them (with the same delivery id as before).
// Running it twice re-drives twice; receivers de-duplicate on webhook-id. CLI: src/tools/redrive.ts.
import { randomBytes } from 'node:crypto';
import { type Kafka, Partitioners } from 'kafkajs';
import type { Config } from '../config/config.js';
import { decodeRetry, encodeRetry, RetryTiers } from './record.js';

export interface RedriveOptions {
  webhookId?: string;
  fromMs?: number;
  toMs?: number;
  dryRun?: boolean;
}

export interface RedriveReport {
  scanned: number;
  matched: number;
  redriven: number;
  unreadable: number;
  /** Matched, but kept without their event (too large): replay the event from `source` instead. */
  withoutEvent: number;
}

export async function redrive(kafka: Kafka, config: Config, o: RedriveOptions): Promise<RedriveReport> {
  const topic = config.retries.dlqTopic;
  const tiers = new RetryTiers(config.retries.topicPrefix, config.retries.scheduleMs);
  if (tiers.delaysMs.length === 0) throw new Error('RETRY_SCHEDULE is none: there is no retry topic to re-drive to');
  const target = tiers.topicOf(tiers.delaysMs[0]!);
  const admin = kafka.admin();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  const consumer = kafka.consumer({ groupId: `blue-webhooks.redrive.${randomBytes(6).toString('hex')}`, maxWaitTimeInMs: 200 });
  const report: RedriveReport = { scanned: 0, matched: 0, redriven: 0, unreadable: 0, withoutEvent: 0 };
  await Promise.all([admin.connect(), producer.connect(), consumer.connect()]);
  try {
    // Read up to the end as it is now, so records written meanwhile are left for a later run.
    const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, Number(p.high)]));
    const remaining = new Set([...ends].filter(([, high]) => high > 0).map(([p]) => p));
    if (remaining.size === 0) return report;
    let done!: () => void;
    let failed!: (e: unknown) => void;
    const finished = new Promise<void>((resolve, reject) => {
      done = resolve;
      failed = reject;
    });
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        try {
          const out = [];
          for (const m of batch.messages) {
            if (Number(m.offset) >= ends.get(batch.partition)!) break;
            report.scanned++;
            const at = Number(m.timestamp);
            if ((o.fromMs !== undefined && at < o.fromMs) || (o.toMs !== undefined && at > o.toMs)) continue;
            let r: ReturnType<typeof decodeRetry>;
            try {
              r = decodeRetry(m.value);
            } catch {
              report.unreadable++;
              continue;
            }
            if (o.webhookId !== undefined && r.webhookId !== o.webhookId) continue;
            report.matched++;
            if (r.omitted) {
              report.withoutEvent++;
              continue;
            }
            // Its entity's turn ended when it failed: a re-driven delivery does not queue again.
            const { entity: _, ...unordered } = r;
            out.push({ key: r.webhookId, value: encodeRetry({ ...unordered, retry: 0, dueAt: Date.now() }) });
          }
          if (out.length > 0 && !o.dryRun) {
            await producer.send({ topic: target, acks: -1, messages: out });
            report.redriven += out.length;
          }
          if (Number(batch.lastOffset()) + 1 >= ends.get(batch.partition)!) remaining.delete(batch.partition);
          if (remaining.size === 0) done();
        } catch (err) {
          failed(err);
        }
      },
    });
    await finished;
    return report;
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}
