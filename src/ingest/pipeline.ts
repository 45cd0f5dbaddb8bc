import type { KafkaMessage } from 'kafkajs';
import { type BlueEvent, decodeEvent, type Registry } from '../codec/index.js';
import { deliveryId, type EventPayload, eventPayload } from '../delivery/index.js';
import { type BatchContext, type DeadLetters, finishWhenDurable } from '../kafka/index.js';
import type { Metrics } from '../metrics/index.js';
import { entityOf } from '../ordering/index.js';
import type { DeliveryRunner } from '../runner/index.js';
import {
  type ErrorCode,
  errorCode,
  errorMessage,
  isShuttingDown,
  type Logger,
  type Semaphore,
  type Stage,
  type UntilDone,
} from '../shared/index.js';
import {
  type ActiveSubscription,
  type CandidateKey,
  candidateKey,
  FilterBudgetExceeded,
  type FilterContext,
  type SubscriptionTable,
} from '../subscriptions/index.js';
import { SpanKind, type Tracing } from '../tracing/index.js';
import { Intake } from './intake.js';

export interface EventPipelineDeps {
  registry: Registry;
  table: SubscriptionTable;
  /** Resolves once the table covers every subscription change written before `sinceMs`. */
  ensureFresh: (sinceMs: number) => Promise<void>;
  runner: DeliveryRunner;
  /** The events DLQ. */
  deadLetters: DeadLetters;
  /** Bounds deliveries in flight across all partitions. */
  limiter: Semaphore;
  metrics: Metrics;
  log: Logger;
  untilDone: UntilDone;
  tracing: Tracing;
}

type Decoded = { message: KafkaMessage; event: BlueEvent } | { message: KafkaMessage; error: unknown };

const NO_PAYLOAD: EventPayload = { head: '', tail: '' };

/**
 * Events of a batch decoded, matched and started at a time. A batch holds hundreds of events, and
 * while the in-flight bound is full the ones not started yet wait: decoded all at once, they wait
 * as parsed objects, which the garbage collector copies at every scavenge. In steps, the rest wait
 * as the record bytes kafkajs holds anyway: a lower peak RSS at the same CPU a delivery
 * (docs/performance.md#method-and-dated-runs). Each step asks the table for its own candidates, mostly from its in-process cache.
 */
export const EVENTS_PER_STEP = 64;

/** Why a candidate does not get an event: it does not match, or its filter would cost too much. */
export type MatchResult = 'match' | 'no_match' | 'filter_budget';

/**
 * Does a subscription found by (project, event type) get this event? The index only narrows the
 * search: each candidate is checked against its own metadata too, then company, enabled, filter.
 */
export function subscriptionMatches(t: ActiveSubscription, e: BlueEvent, ctx: () => FilterContext): MatchResult {
  if (!t.sub.enabled || t.sub.companyId !== e.company.id || !t.projects.has(e.project.id) || !t.events.has(e.event)) {
    return 'no_match';
  }
  if (t.matches === null) return 'match';
  try {
    return t.matches(ctx()) ? 'match' : 'no_match';
  } catch (err) {
    if (err instanceof FilterBudgetExceeded) return 'filter_budget';
    throw err;
  }
}

/**
 * Turns a batch of events into deliveries. It returns once every delivery has been *started*;
 * each offset is marked finished in the tracker when all its outcomes are on the results topic
 * (or the event is in the DLQ), and only then can it be committed.
 *
 * Every event ends in outcomes or a dead letter, whatever it holds: an exception in any step for
 * one event (a bug, or input no rule foresaw) is counted in internal_errors_total{stage}, logged
 * with the event id, and the event goes to the events DLQ as INTERNAL_ERROR. The partition moves
 * on; nothing is left unfinished but work that waits for a dependency.
 */
export class EventPipeline extends Intake<EventPipelineDeps> {
  override async handleBatch(batch: BatchContext): Promise<void> {
    const fresh = this.fresh(batch);
    if (fresh.length === 0) return;
    this.deps.metrics.eventsConsumed.inc(fresh.length);
    for (let i = 0; i < fresh.length; i += EVENTS_PER_STEP) {
      if (!(await this.handleStep(batch, fresh.slice(i, i + EVENTS_PER_STEP)))) return;
    }
  }

  /** Decodes, matches and starts some of a batch's events; false once it may take no more in. */
  private async handleStep(batch: BatchContext, messages: KafkaMessage[]): Promise<boolean> {
    const { topic, partition, heartbeat } = batch;
    const { tracing } = this.deps;
    const receivedAt = Date.now();
    const decoded = await Promise.all(messages.map((m) => this.decode(m)));

    // The table must include every webhook created before these events were written.
    let newest = 0;
    const keys: CandidateKey[] = [];
    for (const item of decoded) {
      if ('event' in item) {
        newest = Math.max(newest, Math.min(Number(item.message.timestamp) || 0, receivedAt));
        keys.push({ projectId: item.event.project.id, eventType: item.event.event });
      }
    }
    if (keys.length > 0) {
      const t0 = performance.now();
      await this.deps.untilDone(() => this.deps.ensureFresh(newest), 'waiting for the subscription table');
      this.deps.metrics.freshnessWait.observe((performance.now() - t0) / 1000);
    }
    const candidates = await this.deps.untilDone(() => this.deps.table.candidates(keys), 'looking up subscriptions');

    for (const item of decoded) {
      const entry = this.take(batch, item.message);
      if (entry === null) return false;
      const deadLetter = (reason: ErrorCode, detail: string) =>
        this.deps.deadLetters.write(item.message, { topic, partition }, reason, detail);
      if ('error' in item) {
        const code = errorCode(item.error) ?? 'DECODE_FAILED';
        this.deps.metrics.decodeErrors.inc({ reason: code });
        finishWhenDurable(entry, deadLetter(code, errorMessage(item.error)));
        continue;
      }
      const { event } = item;
      entry.label = event.id;
      // consume → match → (per delivery) attempt → outcome, under the record's traceparent if it has one.
      const consume = tracing.enabled ? this.startConsume(item.message, topic, partition, event.id) : null;
      const match = consume && tracing.start('match', consume.context, SpanKind.INTERNAL);
      let prepared: { targets: ActiveSubscription[]; payload: EventPayload };
      try {
        prepared = this.prepare(event, candidates.get(candidateKey(event.project.id, event.event)) ?? []);
      } catch (err) {
        consume?.span.end();
        // Nothing was started for this event: it is dead-lettered whole.
        finishWhenDurable(entry, this.internalError(event.id, (err as { stage: Stage }).stage, err, deadLetter));
        continue;
      } finally {
        match?.end();
      }
      const { targets, payload } = prepared;
      entry.expect(targets.length);
      if (targets.length === 0) {
        this.deps.metrics.eventsUnmatched.inc();
        consume?.span.end();
        continue;
      }
      const eventTimestampMs = Number(item.message.timestamp) || Date.now();
      const source = { topic, partition, offset: item.message.offset };
      const entity = targets.some((t) => t.sub.ordering === 'entity') ? entityOf(item.message.key) : null;
      const traceparent = tracing.passThrough(item.message.headers);
      const now = Date.now();
      // Several deliveries of one event may fail unexpectedly; the event is dead-lettered once.
      let failed: Promise<void> | null = null;
      const onFailure = (err: unknown) => (failed ??= this.internalError(event.id, 'delivery', err, deadLetter));
      for (const target of targets) {
        const room = this.deps.runner.waitForRoom(target, entity);
        if (room) await this.backpressure(room, heartbeat);
        const delivery = {
          deliveryId: deliveryId(event.id, target.sub.id),
          event,
          payload,
          target,
          eventTimestampMs,
          source,
          entity,
          trace: consume?.context,
          traceparent,
        };
        await this.start(
          entry,
          batch,
          () => this.deps.runner.run({ delivery, attempt: 1, retriesDone: 0, firstAttemptAt: now, via: 'event' }),
          onFailure,
        );
      }
      consume?.span.end();
    }
    return true;
  }

  private startConsume(m: KafkaMessage, topic: string, partition: number, eventId: string) {
    const { tracing } = this.deps;
    const parent = tracing.fromKafkaHeaders(m.headers);
    const span = tracing.start('consume', parent, SpanKind.CONSUMER, {
      'messaging.system': 'kafka',
      'messaging.destination.name': topic,
      'messaging.destination.partition.id': String(partition),
      'messaging.kafka.offset': Number(m.offset),
      'blue.event.id': eventId,
    })!;
    return { span, context: tracing.within(parent, span) };
  }

  /** This partition waits for a busy endpoint (or entity) to have room: bounded, counted, and heartbeating. */
  private async backpressure(room: Promise<void>, heartbeat: () => Promise<void>): Promise<void> {
    const t0 = performance.now();
    await room;
    this.deps.metrics.backpressureWait.inc((performance.now() - t0) / 1000);
    await heartbeat();
  }

  /** The webhooks that get this event, and its payload; an error says at which stage it was thrown. */
  private prepare(
    event: BlueEvent,
    candidates: readonly ActiveSubscription[],
  ): { targets: ActiveSubscription[]; payload: EventPayload } {
    let stage: Stage = 'match';
    try {
      const targets = this.matching(event, candidates);
      stage = 'payload';
      return { targets, payload: targets.length > 0 ? eventPayload(event) : NO_PAYLOAD };
    } catch (err) {
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { stage });
    }
  }

  private matching(event: BlueEvent, candidates: readonly ActiveSubscription[]): ActiveSubscription[] {
    let ctx: FilterContext | undefined;
    const context = () => (ctx ??= filterContext(event));
    const targets: ActiveSubscription[] = [];
    for (const t of candidates) {
      const result = subscriptionMatches(t, event, context);
      if (result === 'match') targets.push(t);
      else if (result === 'filter_budget') {
        this.deps.metrics.filterBudgetExceeded.inc();
        this.deps.log.warn('filter too costly for this event; the webhook does not get it', {
          eventId: event.id,
          webhookId: t.sub.id,
        });
      }
    }
    return targets;
  }

  private internalError(
    eventId: string,
    stage: Stage,
    err: unknown,
    deadLetter: (reason: 'INTERNAL_ERROR', detail: string) => Promise<void>,
  ): Promise<void> {
    this.deps.metrics.internalErrors.inc({ stage });
    this.deps.log.error('unexpected error; event dead-lettered', { eventId, stage, error: errorMessage(err) });
    return deadLetter('INTERNAL_ERROR', `${stage}: ${errorMessage(err)}`);
  }

  private async decode(m: KafkaMessage): Promise<Decoded> {
    try {
      return {
        message: m,
        event: await this.deps.untilDone(() => decodeEvent(m.value, this.deps.registry), 'decoding an event'),
      };
    } catch (error) {
      if (isShuttingDown(error)) throw error;
      return { message: m, error };
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
