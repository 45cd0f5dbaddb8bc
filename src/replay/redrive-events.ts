// Re-drives dead-lettered events: reads the events DLQ up to its current end, picks the records
// that match (by x-dlq-reason and by when they were dead-lettered), and puts the original key,
// value and headers back on the events topic. The dispatcher then reads them like any new event:
// matched against the subscriptions as they are now, delivered with the same delivery ids (they
// derive from the event id). Use it once the cause is fixed: a config change, a subscription
// created, a bug fixed, an endpoint that stalls no more. Running it twice re-drives twice.
import type { Kafka } from 'kafkajs';
import type { Config } from '../config/index.js';
import { copyDeadLetters, type KafkaWriter } from '../kafka/index.js';
import type { ErrorCode } from '../shared/index.js';

export interface EventsRedriveOptions {
  /** Only records dead-lettered for this reason (x-dlq-reason: INTERNAL_ERROR, STALLED, ...). */
  reason?: ErrorCode;
  /** Epoch ms: by the time the record was dead-lettered. */
  fromMs?: number;
  toMs?: number;
  dryRun?: boolean;
}

export interface EventsRedriveReport {
  scanned: number;
  matched: number;
  redriven: number;
  /** Matched, but kept without their value (too large): replay them with `replay --event` instead. */
  withoutValue: number;
}

export async function redriveEvents(
  kafka: Kafka,
  writer: KafkaWriter,
  config: Config,
  options: EventsRedriveOptions,
): Promise<EventsRedriveReport> {
  const counts = { matched: 0, withoutValue: 0 };
  const { scanned, copied } = await copyDeadLetters({
    kafka,
    writer,
    topic: config.topics.dlq,
    purpose: 'redrive-events',
    fromMs: options.fromMs,
    toMs: options.toMs,
    dryRun: options.dryRun,
    copy: (m) => {
      const headers = m.headers ?? {};
      if (options.reason !== undefined && String(headers['x-dlq-reason'] ?? '') !== options.reason) return null;
      counts.matched++;
      if (headers['x-dlq-value-omitted'] !== undefined) {
        counts.withoutValue++;
        return null;
      }
      const original = Object.fromEntries(Object.entries(headers).filter(([k]) => !k.startsWith('x-dlq-'))) as Record<
        string,
        Buffer
      >;
      return { topic: config.topics.events, message: { key: m.key, value: m.value, headers: original } };
    },
  });
  return { scanned, ...counts, redriven: copied };
}
