import type { KafkaMessage } from 'kafkajs';
import { type BlueEvent, decodeEvent } from '../codec/event.js';
import type { Registry } from '../codec/registry.js';
import { deliveryId, eventPayload } from '../delivery/payload.js';
import type { DeliveryRunner } from '../dispatch/runner.js';
import type { BatchContext, BatchHandler } from '../kafka/tracked-consumer.js';
import type { Metrics } from '../metrics/metrics.js';
import { BlueWebhooksError } from '../shared/errors.js';
import type { Semaphore } from '../shared/semaphore.js';
import type { FilterContext } from '../subscriptions/filter.js';
import type { ActiveSubscription } from '../subscriptions/subscription.js';
import { type CandidateKey, candidateKey, type SubscriptionTable } from '../subscriptions/table.js';
import type { EventDeadLetters } from './dead-letters.js';
import { finishOnSuccess } from './offset-tracker.js';

export interface EventPipelineDeps {
  registry: Registry;
  table: SubscriptionTable;
  /** Resolves once the table covers every subscription change written before `sinceMs`. */
  ensureFresh: (sinceMs: number) => Promise<void>;
  runner: DeliveryRunner;
  deadLetters: EventDeadLetters;
  /** Bounds deliveries in flight across all partitions. */
  limiter: Semaphore;
  metrics: Metrics;
  /** Runs an infrastructure call until it succeeds (see retryWhileRetriable). */
  retry: <T>(fn: () => Promise<T>, what: string) => Promise<T>;
}

type Decoded = { m: KafkaMessage; event: BlueEvent } | { m: KafkaMessage; error: unknown };

/** Does a subscription found by (project, event type) also pass the remaining rules? */
export function subscriptionMatches(t: ActiveSubscription, e: BlueEvent, ctx: () => FilterContext): boolean {
  return t.sub.enabled && t.sub.companyId === e.company.id && (t.matches === null || t.matches(ctx()));
}

/**
 * Turns a batch of events into deliveries. It returns once every delivery has been *started*;
 * each offset is marked finished in the tracker when all its outcomes are on the results topic
 * (or the event is in the DLQ), and only then can it be committed.
 */
export class EventPipeline implements BatchHandler {
  private draining = false;

  constructor(private readonly d: EventPipelineDeps) {}

  /**
   * Stops taking events in: the rest of a batch already fetched is left uncommitted for the next
   * owner of the partition. An event already started still gets all its deliveries (no partial
   * event, hence no duplicates when the next owner reads it).
   */
  drain(): void {
    this.draining = true;
  }

  async handleBatch({ partition, messages, tracker, heartbeat, resolveOffset }: BatchContext): Promise<void> {
    const fresh: KafkaMessage[] = [];
    for (const m of messages) {
      if (tracker.has(Number(m.offset))) resolveOffset(m.offset);
      else fresh.push(m);
    }
    if (fresh.length === 0) return;
    this.d.metrics.eventsConsumed.inc(fresh.length);
    const receivedAt = Date.now();
    const decoded = await Promise.all(fresh.map((m) => this.decode(m)));

    // The table must include every webhook created before these events were written.
    let newest = 0;
    const keys: CandidateKey[] = [];
    for (const x of decoded) {
      if ('event' in x) {
        newest = Math.max(newest, Math.min(Number(x.m.timestamp), receivedAt));
        keys.push({ projectId: x.event.project.id, eventType: x.event.event });
      }
    }
    if (keys.length > 0) {
      const t0 = performance.now();
      await this.d.retry(() => this.d.ensureFresh(newest), 'waiting for the subscription table');
      this.d.metrics.freshnessWait.observe((performance.now() - t0) / 1000);
    }
    const candidates = await this.d.retry(() => this.d.table.candidates(keys), 'looking up subscriptions');

    for (const x of decoded) {
      if (this.draining) return;
      const entry = tracker.add(Number(x.m.offset));
      resolveOffset(x.m.offset);
      if ('error' in x) {
        finishOnSuccess(entry, this.d.deadLetters.write(x.m, partition, x.error));
        continue;
      }
      const { event } = x;
      let ctx: FilterContext | undefined;
      const context = () => (ctx ??= filterContext(event));
      const targets = (candidates.get(candidateKey(event.project.id, event.event)) ?? []).filter((t) =>
        subscriptionMatches(t, event, context),
      );
      entry.expect(targets.length);
      if (targets.length === 0) continue;
      const payload = eventPayload(event);
      const eventTimestampMs = Number(x.m.timestamp);
      const now = Date.now();
      for (const target of targets) {
        if (!this.d.limiter.tryAcquire()) await this.d.limiter.acquire(heartbeat);
        const delivery = { deliveryId: deliveryId(event.id, target.sub.id), event, payload, target, eventTimestampMs };
        const run = this.d.runner.run({ delivery, attempt: 1, retry: 0, firstAttemptAt: now });
        finishOnSuccess(entry, run.finally(() => this.d.limiter.release()));
      }
    }
  }

  private async decode(m: KafkaMessage): Promise<Decoded> {
    try {
      return { m, event: await this.d.retry(() => decodeEvent(m.value, this.d.registry), 'decoding an event') };
    } catch (error) {
      if (error instanceof BlueWebhooksError && error.code === 'SHUTTING_DOWN') throw error;
      return { m, error };
    }
  }
}

export function filterContext(e: BlueEvent): FilterContext {
  return {
    event: e.event,
    currentValue: e.currentValue,
    previousValue: e.previousValue,
    company: e.company,
    project: e.project,
    user: e.user,
  };
}
