import type { KafkaMessage } from 'kafkajs';
import type { Metrics } from '../metrics/index.js';
import type { Logger } from '../shared/index.js';
import type { RecordOrigin } from './dead-letters.js';
import type { OffsetEntry, PartitionTracker } from './offset-tracker.js';

/** A partition the watchdog looks at. */
export interface WatchedPartition {
  topic: string;
  partition: number;
  tracker: PartitionTracker;
}

export interface StallWatchdogOptions {
  /** Which consumer this is (logs, metrics). */
  name: 'events' | 'retries';
  /** STALL_TIMEOUT_MS. */
  stallTimeoutMs: number;
  /** Whether Redis and Kafka answer: time waiting for them does not count toward a stall. */
  dependenciesUp: () => boolean;
  /** The partitions this replica owns now. */
  owned: () => Iterable<WatchedPartition>;
  /** Makes a stalled record's end durable (a dead letter with reason STALLED). */
  deadLetterStalled: (m: KafkaMessage, from: RecordOrigin, detail: string) => Promise<void>;
  metrics: Metrics;
  log: Logger;
}

/**
 * Every offset must finish; the work behind one can still hang (a bug, or a case no timeout
 * covers), and then the commit of its partition stops for good while everything else looks
 * healthy. So the age of each partition's oldest unfinished offset is a metric, and one unfinished
 * for STALL_TIMEOUT_MS (dependencies up) is logged with what it waits for, counted, dead-lettered
 * as STALLED (to be re-driven), and finished: the partition moves on. Work still under way for it
 * may complete later; its outcome is still recorded (at least once).
 */
export class StallWatchdog {
  private timer: NodeJS.Timeout | null = null;
  /** Since when the dependencies have answered without a break (stall ages count from here). */
  private upSince = Date.now();
  /** Offsets found stalled (each reported once, and dead-lettered once). */
  private readonly stalled = new WeakSet<OffsetEntry>();

  constructor(private readonly options: StallWatchdogOptions) {
    options.metrics.stalls.inc({ consumer: options.name }, 0); // at 0 from the start, so that increase() sees the first stall
  }

  start(): void {
    const everyMs = Math.min(1000, Math.max(50, this.options.stallTimeoutMs / 4));
    this.timer = setInterval(() => this.watch(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Partitions whose oldest unfinished offset has waited past STALL_TIMEOUT_MS (readiness names them). */
  stalledPartitions(): string[] {
    const now = Date.now();
    return [...this.options.owned()]
      .filter((t) => {
        const oldest = t.tracker.oldestUnfinished();
        return oldest && now - Math.max(oldest.addedAt, this.upSince) >= this.options.stallTimeoutMs;
      })
      .map((t) => `${t.topic}[${t.partition}]`);
  }

  private watch(): void {
    const now = Date.now();
    if (!this.options.dependenciesUp()) this.upSince = now;
    for (const t of this.options.owned()) {
      const oldest = t.tracker.oldestUnfinished();
      const labels = { topic: t.topic, partition: String(t.partition) };
      this.options.metrics.oldestUnfinished.set(labels, oldest ? (now - oldest.addedAt) / 1000 : 0);
      for (const entry of t.tracker.unfinished()) {
        if (now - Math.max(entry.addedAt, this.upSince) < this.options.stallTimeoutMs) break;
        if (!this.stalled.has(entry)) this.onStalled(t, entry, now);
      }
    }
  }

  private onStalled(t: WatchedPartition, entry: OffsetEntry, now: number): void {
    this.stalled.add(entry);
    const waitingFor = `${entry.unfinished} unfinished piece(s) of work (deliveries, or their outcome writes)`;
    this.options.metrics.stalls.inc({ consumer: this.options.name });
    this.options.log.error('partition stalled: an offset unfinished for STALL_TIMEOUT_MS is dead-lettered as STALLED', {
      topic: t.topic,
      partition: t.partition,
      offset: entry.offset,
      id: entry.label,
      waitingFor,
      pending: t.tracker.pending,
    });
    const message = entry.message;
    if (!message) {
      entry.finish();
      return;
    }
    const detail = `unfinished for ${Math.round((now - entry.addedAt) / 1000)} s, waiting for ${waitingFor}`;
    this.options.deadLetterStalled(message, { topic: t.topic, partition: t.partition }, detail).then(
      () => entry.finish(),
      // Kafka refused the dead letter (or the service is stopping): tried again on a later tick.
      () => this.stalled.delete(entry),
    );
  }
}
