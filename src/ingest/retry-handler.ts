import type { KafkaMessage } from 'kafkajs';
import { type BatchContext, type DeadLetters, finishWhenDurable } from '../kafka/index.js';
import type { Metrics } from '../metrics/index.js';
import { decodeRetry, type RetryRecord } from '../retries/index.js';
import { type DeliveryRunner, inputFromRecord } from '../runner/index.js';
import { errorCode, errorMessage, type Logger, RecentKeys, type Semaphore, type UntilDone } from '../shared/index.js';
import type { SubscriptionTable } from '../subscriptions/index.js';
import { Intake } from './intake.js';

export interface RetryHandlerDeps {
  table: SubscriptionTable;
  runner: DeliveryRunner;
  limiter: Semaphore;
  /** The deliveries DLQ, for records that cannot be read or handled. */
  deadLetters: DeadLetters;
  metrics: Metrics;
  log: Logger;
  untilDone: UntilDone;
}

/**
 * Consumes the delay topics. Records in one topic come due in about the order they were written,
 * so the handler takes messages while they are due and pauses the partition until its head is due.
 * Before each attempt it reads the current subscription: deleted or disabled ends the delivery;
 * a changed URL or secret is used as it is now.
 */
export class RetryHandler extends Intake<RetryHandlerDeps> {
  /**
   * When a broker fails between appending a produce request and acknowledging it, the writer's
   * retry appends the same retry records again, next to the first copies. Without this, each copy
   * would be one more HTTP request to the endpoint. Copies are byte-identical, so the key includes
   * dueAt: a re-driven record (new dueAt) is never mistaken for a copy. 20,000 keys (a few MB)
   * span far more than one produce request; a copy read by another replica after a rebalance is
   * still delivered (at least once).
   */
  private readonly recent = new RecentKeys(20_000);

  override async handleBatch(batch: BatchContext): Promise<void> {
    const { deadLetters, metrics, log } = this.deps;
    const from = { topic: batch.topic, partition: batch.partition };
    for (const m of this.fresh(batch)) {
      const parsed = this.parse(m);
      if ('record' in parsed && parsed.record.dueAt > Date.now()) {
        // Not due: stop here, unresolved, and fetch this message again when it is.
        batch.pauseFor(parsed.record.dueAt - Date.now());
        return;
      }
      const entry = this.take(batch, m);
      if (entry === null) return;
      if ('error' in parsed) {
        finishWhenDurable(entry, deadLetters.write(m, from, 'INVALID_RETRY_RECORD', parsed.error));
        continue;
      }
      const record = parsed.record;
      entry.label = record.deliveryId;
      if (this.recent.seen(`${record.deliveryId}|${record.attempt}|${record.dueAt}`)) {
        metrics.duplicatesSkipped.inc({ source: 'retry' });
        entry.finishOne();
        continue;
      }
      metrics.retryLateness.observe(Math.max(0, Date.now() - record.dueAt) / 1000);
      // An unexpected error puts the record in the deliveries DLQ (it can be re-driven from there).
      await this.start(
        entry,
        batch,
        () => this.attempt(record),
        (err) => {
          metrics.internalErrors.inc({ stage: 'retry' });
          log.error('unexpected error; retry record dead-lettered', {
            deliveryId: record.deliveryId,
            eventId: record.event.id,
            error: errorMessage(err),
          });
          return deadLetters.write(m, from, 'INTERNAL_ERROR', `retry: ${errorMessage(err)}`);
        },
      );
    }
  }

  private async attempt(r: RetryRecord): Promise<void> {
    const target = await this.deps.untilDone(
      () => this.deps.table.current(r.webhookId),
      'reading the current subscription',
    );
    const ref = {
      deliveryId: r.deliveryId,
      webhookId: r.webhookId,
      event: r.event,
      ...(r.source ? { source: r.source } : {}),
    };
    const entity = r.entity ?? null;
    if (!target) return this.deps.runner.end(ref, r.attempt, 'deleted', entity);
    if (!target.sub.enabled) return this.deps.runner.end(ref, r.attempt, 'disabled', entity);
    await this.deps.runner.run(inputFromRecord(r, target));
  }

  private parse(m: KafkaMessage): { record: RetryRecord } | { error: string } {
    try {
      return { record: decodeRetry(m.value) };
    } catch (err) {
      // Only this service writes these topics; a bad record is a bug or tampering: say so loudly.
      this.deps.metrics.decodeErrors.inc({ reason: errorCode(err) ?? 'INVALID_RETRY_RECORD' });
      this.deps.log.error('unreadable retry record dead-lettered', { offset: m.offset, error: errorMessage(err) });
      return { error: errorMessage(err) };
    }
  }
}
