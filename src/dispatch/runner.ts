import {
  type AttemptReport,
  type Deliverer,
  type Delivery,
  type EndpointGate,
  eventPayload,
  type RateLimiter,
} from '../delivery/index.js';
import type { CircuitBreaker, WebhookStatusEvent } from '../health/index.js';
import type { Metrics } from '../metrics/index.js';
import type { EntityOrder, OrderKey } from '../ordering/index.js';
import {
  type AvroPublisher,
  type DeliveryRef,
  type OutcomeReason,
  type OutcomeState,
  type ResultDetails,
  resultOf,
  type WebhookResult,
} from '../outcomes/index.js';
import {
  type Decision,
  decide,
  decodeRetry,
  encodeRetry,
  isRetriableOutcome,
  type RetryPolicyOptions,
  type RetryRecord,
  type RetryScheduler,
} from '../retries/index.js';
import { type ErrorCode, errorCode } from '../shared/index.js';
import type { ActiveSubscription } from '../subscriptions/index.js';
import { SpanKind, type Tracing } from '../tracing/index.js';

export interface DeliveryRunnerDeps {
  deliverer: Deliverer;
  breaker: CircuitBreaker;
  gate: EndpointGate;
  rateLimiter: RateLimiter;
  /** The lines of webhooks that order by entity. */
  order: EntityOrder;
  /** Deliveries of one entity waiting in this process for the one before them (ENDPOINT_MAX_QUEUE). */
  maxEntityQueue: number;
  scheduler: RetryScheduler;
  results: AvroPublisher<WebhookResult>;
  statuses: AvroPublisher<WebhookStatusEvent>;
  policy: RetryPolicyOptions;
  metrics: Metrics;
  /** Runs an infrastructure call until it succeeds. */
  retry: <T>(fn: () => Promise<T>, what: string) => Promise<T>;
  tracing: Tracing;
}

/** One attempt of one delivery, with where it stands on the schedule. */
export interface RunInput {
  delivery: Delivery;
  /** 1 for the first attempt. */
  attempt: number;
  /** Retries already made along the schedule. */
  retry: number;
  /** Epoch ms of the first attempt (now, for a first attempt). */
  firstAttemptAt: number;
  /** A new event, or a retry record (for an ordered webhook, the driver of its entity's line). */
  via: 'event' | 'retry';
}

/** An attempt that was not made, so that the schedule treats it like a retriable failure. */
function skipped(attempt: number, code: ErrorCode, message: string): AttemptReport {
  return {
    outcome: { delivered: false, retriable: true, httpStatus: null, code, message, retryAfterMs: null, gone: false },
    durationMs: 0,
    snippet: null,
    attempt,
  };
}

/** What follows an attempt: the retry policy's decision, or a deferral that costs no retry. */
type Next = { decision: Decision; reason: OutcomeReason | null; deferred: boolean };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Deliveries of one line a retry record goes on with in process before it hands over to a retry
 * record of the next one: it stays unfinished on its topic meanwhile, and must not stall it.
 */
const LINE_STEPS = 100;

/**
 * Runs one attempt of a delivery and makes what follows durable: the outcome on the results topic,
 * plus the next retry on its delay topic or the delivery in the deliveries DLQ. Resolves only once
 * all of that is acknowledged by Kafka; only then may the source offset be committed.
 *
 * For a webhook with ordering "entity", a delivery first takes its place in its entity's line
 * (src/ordering): it goes at once when the line is empty, and otherwise waits, stored in Redis,
 * until the ones before it have ended. Within this process, deliveries of one entity also run one
 * after the other (`inLine`), since they come from one partition in order.
 */
export class DeliveryRunner {
  /** Per (webhook, entity): the last delivery started here, and how many wait for their turn. */
  private readonly chains = new Map<string, { tail: Promise<void>; length: number }>();

  constructor(private readonly d: DeliveryRunnerDeps) {}

  async run(x: RunInput): Promise<void> {
    const { metrics } = this.d;
    metrics.inFlight.inc();
    try {
      const key = this.orderKey(x);
      if (key === null) await this.runOnce(x, null);
      else if (x.via === 'retry') await this.runTurn(x, key);
      else await this.inLine(key, () => this.runAdmitted(x, key));
    } finally {
      metrics.inFlight.dec();
    }
  }

  /**
   * Backpressure for the events pipeline: nothing when this delivery may start now; otherwise a
   * promise that resolves once its endpoint's queue (or its entity's) has room, or its endpoint is
   * judged not to keep up. The caller, one partition's loop, waits: the partitions feeding a busy
   * endpoint slow down to its pace instead of diverting deliveries to the retry path.
   */
  waitForRoom(target: ActiveSubscription, entity: string | null): Promise<void> | undefined {
    if (entity !== null && target.sub.ordering === 'entity') {
      const chain = this.chains.get(chainKey({ webhookId: target.sub.id, entity }));
      if (chain && chain.length >= this.d.maxEntityQueue) return chain.tail;
    }
    return this.d.gate.waitForRoom(endpointOf(target));
  }

  private orderKey(x: RunInput): OrderKey | null {
    const { entity, target } = x.delivery;
    // A retry record carries an entity only if its webhook ordered by entity when it was written.
    if (entity === null || (x.via === 'event' && target.sub.ordering !== 'entity')) return null;
    return { webhookId: target.sub.id, entity };
  }

  /** Runs `work` after the previous delivery of this (webhook, entity) started here has finished. */
  private inLine(key: OrderKey, work: () => Promise<void>): Promise<void> {
    const k = chainKey(key);
    const chain = this.chains.get(k) ?? { tail: Promise.resolve(), length: 0 };
    const result = chain.tail.then(work);
    chain.tail = result.then(
      () => {},
      () => {},
    );
    chain.length++;
    this.chains.set(k, chain);
    void chain.tail.then(() => {
      if (--chain.length === 0) this.chains.delete(k);
    });
    return result;
  }

  /** A delivery of a new event to an ordered webhook: it goes now, or waits in its entity's line. */
  private async runAdmitted(x: RunInput, key: OrderKey): Promise<void> {
    const stored = encodeRetry(this.recordOf(x, { attempt: x.attempt, retry: x.retry, dueAt: Date.now() })).toString(
      'utf8',
    );
    const line = await this.d.retry(
      () => this.d.order.admit(key, x.delivery.deliveryId, stored),
      'queueing an ordered delivery',
    );
    if (line.undriven !== null) await this.drive(key, line.undriven, 'repaired');
    switch (line.status) {
      case 'free':
        await this.runOnce(x, key);
        return;
      case 'held':
        this.d.metrics.ordered.inc({ step: 'held' });
        return this.publish(x, 'RETRY_SCHEDULED', { attempt: x.attempt, reason: 'held' });
      case 'full':
        return this.lineFull(x);
      default:
        // 'head' or 'present': read again after a crash or a rebalance; the line already has it.
        this.d.metrics.ordered.inc({ step: 'stale' });
    }
  }

  /**
   * A retry record of an ordered webhook: attempted only while first in its entity's line. When
   * its delivery ends, it goes on with the next ones in process (no Kafka round trip per step)
   * until one fails and takes over with a retry record of its own, or LINE_STEPS are done.
   */
  private async runTurn(x: RunInput, key: OrderKey): Promise<void> {
    const { turn, undriven } = await this.d.retry(
      () => this.d.order.turn(key, x.delivery.deliveryId),
      'checking a delivery turn',
    );
    if (undriven !== null) await this.drive(key, undriven, 'repaired');
    if (turn.role === 'stale') {
      this.d.metrics.ordered.inc({ step: 'stale' });
      return;
    }
    let input = turn.role === 'head' ? x : this.nextInLine(turn.record, x);
    for (let step = 1; ; step++) {
      const state = await this.runOnce(input, key);
      if (state === 'RETRY_SCHEDULED') return; // it holds the line, driven by its own retry record
      const next = await this.d.retry(
        () => this.d.order.release(key, input.delivery.deliveryId, x.delivery.deliveryId),
        'releasing an entity',
      );
      if (next === null) return;
      this.d.metrics.ordered.inc({ step: 'released' });
      if (step >= LINE_STEPS) return this.drive(key, next, 'released');
      input = this.nextInLine(next, x);
    }
  }

  /** The next delivery of a line, from what the line stored, to the same (current) subscription. */
  private nextInLine(stored: string, driver: RunInput): RunInput {
    return inputFromRecord(decodeRetry(Buffer.from(stored, 'utf8')), driver.delivery.target);
  }

  private async runOnce(x: RunInput, key: OrderKey | null): Promise<OutcomeState> {
    const webhookId = x.delivery.target.sub.id;
    // The common case (circuit closed, no rate limit, endpoint not busy, success) takes no Redis call and no wait.
    let admission = this.d.breaker.admit(webhookId);
    if (typeof admission !== 'string') {
      admission = await admission.catch(() =>
        this.d.retry(async () => this.d.breaker.admit(webhookId), 'reading the circuit state'),
      );
    }
    if (admission === 'open') {
      return this.skip(
        x,
        key,
        skipped(x.attempt, 'CIRCUIT_OPEN', 'endpoint is UNHEALTHY; waiting for a probe to succeed'),
        'circuit_open',
      );
    }
    const rate = x.delivery.target.sub.rateLimitPerSecond;
    if (rate !== null) {
      const slot = await this.d.retry(() => this.d.rateLimiter.reserve(webhookId, rate), 'reserving a rate-limit slot');
      if ('deferMs' in slot) {
        this.d.metrics.rateLimited.inc({ result: 'deferred' });
        const report = skipped(
          x.attempt,
          'RATE_LIMITED',
          `over rateLimitPerSecond (${rate}); next slot in ${slot.deferMs} ms`,
        );
        return this.after(x, key, report, {
          decision: { kind: 'retry', delayMs: slot.deferMs },
          reason: 'rate_limited',
          deferred: true,
        });
      }
      if (slot.waitMs > 0) {
        this.d.metrics.rateLimited.inc({ result: 'waited' });
        await sleep(slot.waitMs);
      }
    }
    const endpoint = endpointOf(x.delivery.target);
    const pending = this.d.gate.enter(endpoint);
    const entry = typeof pending === 'string' ? pending : await pending;
    if (entry === 'saturated') {
      this.d.metrics.endpointRejections.inc();
      return this.skip(
        x,
        key,
        skipped(
          x.attempt,
          'ENDPOINT_SATURATED',
          'endpoint does not keep up: its queue is full and its expected wait too long',
        ),
        'endpoint_busy',
      );
    }
    const span = x.delivery.trace ? this.startAttempt(x) : null;
    if (span)
      x = {
        ...x,
        delivery: {
          ...x.delivery,
          trace: this.d.tracing.within(x.delivery.trace!, span),
          traceparent: this.d.tracing.traceparent(span),
        },
      };
    let report: AttemptReport;
    let throttled = false;
    const held = performance.now();
    try {
      report = await this.d.deliverer.attempt(x.delivery, x.attempt);
      throttled = report.outcome.httpStatus === 429;
      span?.setAttributes({
        'http.response.status_code': report.outcome.httpStatus ?? 0,
        'blue.outcome.code': report.outcome.code ?? '',
      });
    } finally {
      this.d.gate.release(endpoint, performance.now() - held, throttled);
      span?.end();
    }
    if (throttled) this.d.metrics.endpointThrottled.inc();
    // Only the endpoint's own failures count against its health (not a refused target or a 4xx).
    const failed = !report.outcome.delivered && isRetriableOutcome(report.outcome, this.d.policy);
    if (report.outcome.delivered || failed) {
      const recorded = this.d.breaker.record(webhookId, !failed);
      const t =
        recorded &&
        (await recorded.catch(() =>
          this.d.retry(async () => this.d.breaker.record(webhookId, !failed), 'recording the circuit state'),
        ));
      if (t?.state === 'opened')
        await this.publishStatus(
          webhookId,
          'UNHEALTHY',
          'circuit_opened',
          t.consecutiveFailures,
          report.outcome.httpStatus,
        );
      if (t?.state === 'closed')
        await this.publishStatus(webhookId, 'HEALTHY', 'circuit_closed', 0, report.outcome.httpStatus);
    }
    if (report.outcome.gone) await this.publishStatus(webhookId, 'UNHEALTHY', 'gone', 0, 410);
    const decision = decide(report.outcome, x.retry, this.d.policy);
    return this.after(x, key, report, {
      decision,
      reason: report.outcome.delivered ? null : 'failure',
      deferred: false,
    });
  }

  /** An attempt not made (circuit open, endpoint busy): the schedule treats it as a retriable failure. */
  private skip(x: RunInput, key: OrderKey | null, report: AttemptReport, reason: OutcomeReason): Promise<OutcomeState> {
    return this.after(x, key, report, {
      decision: decide(report.outcome, x.retry, this.d.policy),
      reason,
      deferred: false,
    });
  }

  private async after(x: RunInput, key: OrderKey | null, report: AttemptReport, next: Next): Promise<OutcomeState> {
    const { metrics } = this.d;
    const { decision } = next;
    const details: ResultDetails = {
      attempt: x.attempt,
      outcome: report.outcome,
      durationMs: report.durationMs,
      snippet: report.snippet,
    };
    let state: OutcomeState;
    switch (decision.kind) {
      case 'delivered':
        state = 'DELIVERED';
        metrics.eventToDelivery.observe(
          (Date.now() - (x.delivery.event.occurredAtMs || x.delivery.eventTimestampMs)) / 1000,
        );
        break;
      case 'final':
        state = 'FAILED';
        details.reason = decision.reason;
        break;
      case 'retry': {
        const dueAt = Date.now() + decision.delayMs;
        // A deferral made no attempt: it keeps its attempt number and its place on the schedule.
        const record = next.deferred
          ? this.recordOf(x, { attempt: x.attempt, retry: x.retry, dueAt, report })
          : this.recordOf(x, { attempt: x.attempt + 1, retry: x.retry + 1, dueAt, report });
        const scheduled = await this.scheduleRetry(key, record, decision.delayMs);
        if (scheduled === 'held') {
          metrics.ordered.inc({ step: 'held' });
          state = 'RETRY_SCHEDULED';
          details.reason = 'held';
          break;
        }
        if (scheduled !== 'scheduled') {
          // Too large for a retry record even compressed: a final failure, kept in the deliveries
          // DLQ with a pointer to the event (README, "Every record gets an end"); or its entity's line is full.
          await this.d.scheduler.deadLetter({ ...record, dueAt: Date.now() });
          state = 'FAILED';
          details.reason = scheduled;
          break;
        }
        metrics.retriesScheduled.inc({ reason: next.reason ?? 'failure' });
        state = 'RETRY_SCHEDULED';
        details.reason = next.reason;
        details.nextAttemptAt = dueAt;
        break;
      }
      case 'exhausted':
        await this.d.scheduler.deadLetter(
          this.recordOf(x, { attempt: x.attempt + 1, retry: x.retry, dueAt: Date.now(), report }),
        );
        state = 'FAILED';
        details.reason = 'exhausted';
        break;
    }
    await this.publish(x, state, details);
    if (report.durationMs > 0) metrics.observeDuration(state, report.durationMs / 1000);
    return state;
  }

  /**
   * Writes the retry record. For an ordered delivery it first takes the first place in its
   * entity's line ('held' when an earlier one is there: then it has no retry record of its own).
   */
  private async scheduleRetry(
    key: OrderKey | null,
    record: RetryRecord,
    delayMs: number,
  ): Promise<'scheduled' | 'held' | 'too_large' | 'order_line_full'> {
    const write = () =>
      this.d.scheduler.schedule(record, delayMs).then(
        () => 'scheduled' as const,
        (err: unknown) => {
          if (errorCode(err) !== 'RECORD_TOO_LARGE') throw err;
          return 'too_large' as const;
        },
      );
    if (key === null) return write();
    const stored = encodeRetry(record).toString('utf8');
    const line = await this.d.retry(() => this.d.order.hold(key, record.deliveryId, stored), 'holding an entity');
    if (line.status === 'full') return 'order_line_full';
    if (line.status !== 'head') {
      if (line.undriven !== null) await this.drive(key, line.undriven, 'repaired');
      return 'held';
    }
    const written = await write();
    if (written === 'scheduled')
      await this.d.retry(() => this.d.order.markDriven(key, record.deliveryId), 'marking a driver written');
    // It ends here (FAILED too_large). The next one is left undriven until its retry record is
    // written just after: should this process die in between, the next look at the line repairs it.
    else await this.release(key, record.deliveryId, null);
    return written;
  }

  /**
   * Ends a delivery's turn; the next in its entity's line, if any, gets a retry record due now.
   * `driverId`: the retry record this runs for, read again after a crash to finish the step.
   */
  private async release(key: OrderKey, deliveryId: string, driverId: string | null): Promise<void> {
    const next = await this.d.retry(() => this.d.order.release(key, deliveryId, driverId), 'releasing an entity');
    if (next === null) return;
    this.d.metrics.ordered.inc({ step: 'released' });
    await this.drive(key, next, 'released');
  }

  /** Writes the retry record of a line's first, from what the line stored, and notes it written. */
  private async drive(key: OrderKey, stored: string, why: 'released' | 'repaired'): Promise<void> {
    const record = decodeRetry(Buffer.from(stored, 'utf8'));
    const dueAt = Math.max(record.dueAt, Date.now());
    await this.d.scheduler.schedule({ ...record, dueAt }, dueAt - Date.now());
    await this.d.retry(() => this.d.order.markDriven(key, record.deliveryId), 'marking a driver written');
    if (why === 'repaired') this.d.metrics.ordered.inc({ step: why });
  }

  private async lineFull(x: RunInput): Promise<void> {
    await this.d.scheduler.deadLetter(this.recordOf(x, { attempt: x.attempt, retry: x.retry, dueAt: Date.now() }));
    await this.publish(x, 'FAILED', { attempt: x.attempt, reason: 'order_line_full' });
  }

  private startAttempt(x: RunInput) {
    return this.d.tracing.start('attempt', x.delivery.trace!, SpanKind.CLIENT, {
      'blue.webhook.id': x.delivery.target.sub.id,
      'blue.delivery.id': x.delivery.deliveryId,
      'blue.attempt': x.attempt,
    });
  }

  private async publish(x: RunInput, state: OutcomeState, details: ResultDetails): Promise<void> {
    const span = x.delivery.trace
      ? this.d.tracing.start('outcome', x.delivery.trace, SpanKind.PRODUCER, { 'blue.outcome': state })
      : null;
    try {
      await this.d.results.publish(x.delivery.target.sub.id, resultOf(refOf(x.delivery), state, details));
    } finally {
      span?.end();
    }
    this.d.metrics.countDelivery(state, x.delivery.event.event);
  }

  private recordOf(
    x: RunInput,
    at: { attempt: number; retry: number; dueAt: number; report?: AttemptReport },
  ): RetryRecord {
    const { occurredAtMs: _, ...event } = x.delivery.event;
    const o = at.report?.outcome;
    return {
      v: 1,
      deliveryId: x.delivery.deliveryId,
      webhookId: x.delivery.target.sub.id,
      attempt: at.attempt,
      retry: at.retry,
      dueAt: at.dueAt,
      firstAttemptAt: x.firstAttemptAt,
      eventTimestampMs: x.delivery.eventTimestampMs,
      event,
      ...(o ? { lastError: { code: o.code, message: o.message, httpStatus: o.httpStatus } } : {}),
      ...(x.delivery.source ? { source: x.delivery.source } : {}),
      ...(this.orderKey(x) ? { entity: x.delivery.entity! } : {}),
    };
  }

  private publishStatus(
    webhookId: string,
    status: WebhookStatusEvent['status'],
    reason: WebhookStatusEvent['reason'],
    consecutiveFailures: number,
    httpStatus: number | null,
  ): Promise<void> {
    return this.d.statuses.publish(webhookId, {
      webhookId,
      status,
      reason,
      consecutiveFailures,
      httpStatus,
      timestamp: Date.now(),
    });
  }

  /**
   * Records an outcome for a delivery that ends without an attempt (deleted or disabled webhook);
   * a retry record of an entity's line ends that delivery's turn.
   */
  async end(ref: DeliveryRef, attempt: number, reason: OutcomeReason, entity: string | null): Promise<void> {
    await this.d.results.publish(ref.webhookId, resultOf(ref, 'FAILED', { attempt, reason }));
    this.d.metrics.countDelivery('FAILED', ref.event.event);
    if (entity === null) return;
    // The line moves on one retry record at a time; each of them ends the same way.
    const key = { webhookId: ref.webhookId, entity };
    const { turn, undriven } = await this.d.retry(
      () => this.d.order.turn(key, ref.deliveryId),
      'checking a delivery turn',
    );
    if (undriven !== null) await this.drive(key, undriven, 'repaired');
    if (turn.role === 'head') await this.release(key, ref.deliveryId, ref.deliveryId);
    else if (turn.role === 'drives') await this.drive(key, turn.record, 'released');
  }
}

/** The next attempt a retry record stands for, to `target` (the subscription as it is now). */
export function inputFromRecord(r: RetryRecord, target: ActiveSubscription): RunInput {
  const event = { ...r.event, occurredAtMs: Date.parse(r.event.occurredAt) };
  return {
    delivery: {
      deliveryId: r.deliveryId,
      event,
      payload: eventPayload(event),
      target,
      eventTimestampMs: r.eventTimestampMs,
      source: r.source,
      entity: r.entity ?? null,
    },
    attempt: r.attempt,
    retry: r.retry,
    firstAttemptAt: r.firstAttemptAt,
    via: 'retry',
  };
}

export function refOf(d: Delivery): DeliveryRef {
  return { deliveryId: d.deliveryId, webhookId: d.target.sub.id, event: d.event };
}

/** The endpoint a delivery goes to, for isolation: its origin. */
export function endpointOf(target: ActiveSubscription): string {
  return target.url?.origin ?? target.sub.url;
}

function chainKey(key: OrderKey): string {
  return `${key.webhookId}\n${key.entity}`;
}
