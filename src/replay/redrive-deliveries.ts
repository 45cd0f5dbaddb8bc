// Re-drives dead-lettered deliveries: reads the deliveries DLQ up to its current end, picks the
// records that match, and puts them back on the first retry topic, due now, with a fresh retry
// schedule. A running dispatcher then delivers them (with the same delivery id as before).
// Running it twice re-drives twice; receivers de-duplicate on webhook-id. CLI: src/tools/redrive.ts.
import type { Kafka } from 'kafkajs';
import type { Config } from '../config/index.js';
import { copyDeadLetters, type KafkaWriter } from '../kafka/index.js';
import { decodeRetry, encodeRetry, RetryTiers } from '../retries/index.js';

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

export async function redrive(
  kafka: Kafka,
  writer: KafkaWriter,
  config: Config,
  options: RedriveOptions,
): Promise<RedriveReport> {
  const tiers = new RetryTiers(config.retries.topicPrefix, config.retries.scheduleMs);
  if (tiers.delaysMs.length === 0) throw new Error('RETRY_SCHEDULE is none: there is no retry topic to re-drive to');
  const target = tiers.topicOf(tiers.delaysMs[0]!);
  const counts = { matched: 0, unreadable: 0, withoutEvent: 0 };
  // Up to the end as it is now, so records written meanwhile are left for a later run.
  const { scanned, copied } = await copyDeadLetters({
    kafka,
    writer,
    topic: config.retries.dlqTopic,
    purpose: 'redrive',
    fromMs: options.fromMs,
    toMs: options.toMs,
    dryRun: options.dryRun,
    copy: (m) => {
      let r: ReturnType<typeof decodeRetry>;
      try {
        r = decodeRetry(m.value);
      } catch {
        counts.unreadable++;
        return null;
      }
      if (options.webhookId !== undefined && r.webhookId !== options.webhookId) return null;
      counts.matched++;
      if (r.omitted) {
        counts.withoutEvent++;
        return null;
      }
      // Its entity's turn ended when it failed: a re-driven delivery does not queue again.
      const { entity: _, ...unordered } = r;
      return {
        topic: target,
        message: { key: r.webhookId, value: encodeRetry({ ...unordered, retry: 0, dueAt: Date.now() }) },
      };
    },
  });
  return { scanned, ...counts, redriven: copied };
}
