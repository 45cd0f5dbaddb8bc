import type { KafkaMessage } from 'kafkajs';
import { type DeliveryRunner, inputFromRecord } from '../dispatch/runner.js';
import type { DeadLetters, RecordOrigin } from '../kafka/dead-letters.js';
import { finishWhenDurable } from '../kafka/offset-tracker.js';
import type { BatchContext, BatchHandler } from '../kafka/tracked-consumer.js';
import type { Metrics } from '../metrics/metrics.js';
import { errorCode, errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { RecentKeys } from '../shared/recent-keys.js';
import type { Semaphore } from '../shared/semaphore.js';
import type { SubscriptionTable } from '../subscriptions/table.js';
import { decodeRetry, type RetryRecord } from './record.js';

export interface RetryHandlerDeps {
  table: SubscriptionTable;
  runner: DeliveryRunner;
  limiter: Semaphore;
  /** The deliveries DLQ, for records that cannot be read or handled. */
  deadLetters: DeadLetters;
  metrics: Metrics;
  log: Logger;
  retry: <T>(fn: () => Promise<T>, what: string) => Promise<T>;
}

/**
 * Consumes the delay topics. Records in one topic come due in about the order they were written,
 * so the handler takes messages while they are due and pauses the partition until its head is due.
 * Before each attempt it reads the current subscription: deleted or disabled ends the delivery;
 * a changed URL or secret is used as it is now.
 */
export class RetryHandler implements BatchHandler {
  private draining = false;
  /**
   * When a broker fails between appending a produce request and acknowledging it, the writer's
   * retry appends the same retry records again, next to the first copies. Without this, each copy
   * would be one more HTTP request to the endpoint. Copies are byte-identical, so the key includes
   * dueAt: a re-driven record (new dueAt) is never mistaken for a copy. 20,000 keys (a few MB)
   * span far more than one produce request; a copy read by another replica after a rebalance is
   * still delivered (at least once).
   */
  private readonly recent = new RecentKeys(20_000);

  constructor(private readonly d: RetryHandlerDeps) {}

  drain(): void {
    this.draining = true;
  }

  /** A stalled retry goes to the deliveries DLQ as it is; re-driving it delivers it again. */
  deadLetterStalled(m: KafkaMessage, from: RecordOrigin, detail: string): Promise<void> {
    return this.d.deadLetters.write(m, from, 'STALLED', detail);
  }

  async handleBatch({ topic, partition, messages, tracker, heartbeat, resolveOffset, pauseFor }: BatchContext): Promise<void> {
    for (const m of messages) {
      if (tracker.has(Number(m.offset))) {
        resolveOffset(m.offset);
        continue;
      }
      const parsed = this.parse(m);
      if ('record' in parsed && parsed.record.dueAt > Date.now()) {
        // Not due: stop here, unresolved, and fetch this message again when it is.
        pauseFor(parsed.record.dueAt - Date.now());
        return;
      }
      if (this.draining) return;
      const entry = tracker.add(Number(m.offset), m);
      resolveOffset(m.offset);
      const from = { topic, partition };
      if ('error' in parsed) {
        finishWhenDurable(entry, this.d.deadLetters.write(m, from, 'INVALID_RETRY_RECORD', parsed.error));
        continue;
      }
      const r = parsed.record;
      entry.label = r.deliveryId;
      if (this.recent.seen(`${r.deliveryId}|${r.attempt}|${r.dueAt}`)) {
        this.d.metrics.duplicatesSkipped.inc({ source: 'retry' });
        entry.finishOne();
        continue;
      }
      this.d.metrics.retryLateness.observe(Math.max(0, Date.now() - r.dueAt) / 1000);
      if (!this.d.limiter.tryAcquire()) await this.d.limiter.acquire(heartbeat);
      // An unexpected error puts the record in the deliveries DLQ (it can be re-driven from there).
      finishWhenDurable(entry, this.attempt(r).finally(() => this.d.limiter.release()), (err) => {
        this.d.metrics.internalErrors.inc({ stage: 'retry' });
        this.d.log.error('unexpected error; retry record dead-lettered', { deliveryId: r.deliveryId, eventId: r.event.id, error: errorMessage(err) });
        return this.d.deadLetters.write(m, from, 'INTERNAL_ERROR', `retry: ${errorMessage(err)}`);
      });
    }
  }

  private async attempt(r: RetryRecord): Promise<void> {
    const target = await this.d.retry(() => this.d.table.current(r.webhookId), 'reading the current subscription');
    const ref = { deliveryId: r.deliveryId, webhookId: r.webhookId, event: r.event };
    const entity = r.entity ?? null;
    if (!target) return this.d.runner.end(ref, r.attempt, 'deleted', entity);
    if (!target.sub.enabled) return this.d.runner.end(ref, r.attempt, 'disabled', entity);
    await this.d.runner.run(inputFromRecord(r, target));
  }

  private parse(m: KafkaMessage): { record: RetryRecord } | { error: string } {
    try {
      return { record: decodeRetry(m.value) };
    } catch (err) {
      // Only this service writes these topics; a bad record is a bug or tampering: say so loudly.
      this.d.metrics.decodeErrors.inc({ reason: errorCode(err) ?? 'INVALID_RETRY_RECORD' });
      this.d.log.error('unreadable retry record dead-lettered', { offset: m.offset, error: errorMessage(err) });
      return { error: errorMessage(err) };
    }
  }
}
