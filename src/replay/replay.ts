// Replay: "send me again what I should have had between 10:00 and 11:00". Reads the events topic
// over a time range (found by timestamp lookup, not a scan from the beginning), matches each event
// against the *current* subscriptions, and queues each match as a retry record due now on the
// first retry topic. A running dispatcher then delivers them through the normal path (breaker,
// rate limit, endpoint gate, outcomes, retries), with the same delivery ids as the first time, so
// receivers that de-duplicate on webhook-id can tell. CLI: src/tools/replay.ts.
import type { Kafka, KafkaMessage } from 'kafkajs';
import { type BlueEvent, decodeEvent, type Registry } from '../codec/index.js';
import { deliveryId } from '../delivery/index.js';
import { filterContext, subscriptionMatches } from '../ingest/index.js';
import { type KafkaWriter, scanRange } from '../kafka/index.js';
import { encodeRetry, type RetryRecord } from '../retries/index.js';
import { errorCode } from '../shared/index.js';
import type { ActiveSubscription } from '../subscriptions/index.js';

export interface ReplayOptions {
  kafka: Kafka;
  writer: KafkaWriter;
  registry: Registry;
  eventsTopic: string;
  /** The first retry topic: where the matches are queued, due now. */
  retryTopic: string;
  /** Epoch ms; the range is [fromMs, toMs). */
  fromMs: number;
  toMs: number;
  /** The subscriptions that may get an event, as they are now (one webhook, or all for an event id). */
  candidates: (event: BlueEvent) => Promise<readonly ActiveSubscription[]>;
  /** Only this event (--event). */
  eventId?: string;
  dryRun?: boolean;
  /** Called every few seconds on long ranges. */
  progress?: (r: ReplayReport) => void;
}

export interface ReplayReport {
  /** Events read in the range. */
  scanned: number;
  /** Those that decoded (the others are in the events DLQ already, or are not events). */
  decoded: number;
  /** (event, webhook) pairs that match now. */
  matched: number;
  /** Retry records written (0 with --dry-run). */
  queued: number;
  /** Matches whose event is too large for a retry record: replay them from the events topic instead. */
  tooLarge: number;
}

const PROGRESS_EVERY_MS = 5000;

export async function replay(options: ReplayOptions): Promise<ReplayReport> {
  const report: ReplayReport = { scanned: 0, decoded: 0, matched: 0, queued: 0, tooLarge: 0 };
  let lastProgress = Date.now();
  await scanRange({
    kafka: options.kafka,
    topic: options.eventsTopic,
    purpose: 'replay',
    fromMs: options.fromMs,
    toMs: options.toMs,
    each: async (messages, partition) => {
      await Promise.all(messages.map((m) => replayOne(options, m, partition, report)));
      if (options.progress && Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = Date.now();
        options.progress(report);
      }
    },
  });
  return report;
}

async function replayOne(
  options: ReplayOptions,
  m: KafkaMessage,
  partition: number,
  report: ReplayReport,
): Promise<void> {
  report.scanned++;
  let event: BlueEvent;
  try {
    event = await decodeEvent(m.value, options.registry);
  } catch {
    return;
  }
  report.decoded++;
  if (options.eventId !== undefined && event.id !== options.eventId) return;
  const now = Date.now();
  for (const target of await options.candidates(event)) {
    if (subscriptionMatches(target, event, () => filterContext(event)) !== 'match') continue;
    report.matched++;
    if (options.dryRun) continue;
    const { occurredAtMs: _, ...stored } = event;
    const record: RetryRecord = {
      v: 1,
      deliveryId: deliveryId(event.id, target.sub.id),
      webhookId: target.sub.id,
      attempt: 1,
      retry: 0,
      dueAt: now,
      firstAttemptAt: now,
      eventTimestampMs: Number(m.timestamp) || now,
      event: stored,
      source: { topic: options.eventsTopic, partition, offset: m.offset },
    };
    try {
      await options.writer.write(options.retryTopic, { key: target.sub.id, value: encodeRetry(record) });
      report.queued++;
    } catch (err) {
      if (errorCode(err) !== 'RECORD_TOO_LARGE') throw err;
      report.tooLarge++;
    }
  }
}
