import type { KafkaMessage } from 'kafkajs';
import { eventPayload } from '../delivery/payload.js';
import type { DeliveryRunner } from '../dispatch/runner.js';
import { finishOnSuccess } from '../ingest/offset-tracker.js';
import type { BatchContext, BatchHandler } from '../kafka/tracked-consumer.js';
import type { Metrics } from '../metrics/metrics.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { RecentKeys } from '../shared/recent-keys.js';
import type { Semaphore } from '../shared/semaphore.js';
import type { SubscriptionTable } from '../subscriptions/table.js';
import { decodeRetry, type RetryRecord } from './record.js';

export interface RetryHandlerDeps {
  table: SubscriptionTable;
  runner: DeliveryRunner;
  limiter: Semaphore;
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

  async handleBatch({ messages, tracker, heartbeat, resolveOffset, pauseFor }: BatchContext): Promise<void> {
    for (const m of messages) {
      if (tracker.has(Number(m.offset))) {
        resolveOffset(m.offset);
        continue;
      }
      const record = this.parse(m);
      if (record && record.dueAt > Date.now()) {
        // Not due: stop here, unresolved, and fetch this message again when it is.
        pauseFor(record.dueAt - Date.now());
        return;
      }
      if (this.draining) return;
      const entry = tracker.add(Number(m.offset));
      resolveOffset(m.offset);
      if (!record) {
        entry.finishOne();
        continue;
      }
      if (this.recent.seen(`${record.deliveryId}|${record.attempt}|${record.dueAt}`)) {
        this.d.metrics.duplicatesSkipped.inc({ source: 'retry' });
        entry.finishOne();
        continue;
      }
      this.d.metrics.retryLateness.observe(Math.max(0, Date.now() - record.dueAt) / 1000);
      if (!this.d.limiter.tryAcquire()) await this.d.limiter.acquire(heartbeat);
      finishOnSuccess(entry, this.attempt(record).finally(() => this.d.limiter.release()));
    }
  }

  private async attempt(r: RetryRecord): Promise<void> {
    const target = await this.d.retry(() => this.d.table.current(r.webhookId), 'reading the current subscription');
    const ref = { deliveryId: r.deliveryId, webhookId: r.webhookId, event: r.event };
    if (!target) return this.d.runner.end(ref, r.attempt, 'deleted');
    if (!target.sub.enabled) return this.d.runner.end(ref, r.attempt, 'disabled');
    const event = { ...r.event, occurredAtMs: Date.parse(r.event.occurredAt) };
    await this.d.runner.run({
      delivery: { deliveryId: r.deliveryId, event, payload: eventPayload(event), target, eventTimestampMs: r.eventTimestampMs },
      attempt: r.attempt,
      retry: r.retry,
      firstAttemptAt: r.firstAttemptAt,
    });
  }

  private parse(m: KafkaMessage): RetryRecord | null {
    try {
      return decodeRetry(m.value);
    } catch (err) {
      // Only this service writes these topics; a bad record is a bug or tampering: say so loudly.
      this.d.metrics.decodeErrors.inc({ reason: 'INVALID_RETRY_RECORD' });
      this.d.log.error('unreadable retry record skipped', { offset: m.offset, error: errorMessage(err) });
      return null;
    }
  }
}
