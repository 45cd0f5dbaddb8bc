import {
  type AttemptOutcome,
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
  nextOnSchedule,
  type RetryPolicyOptions,
  type RetryRecord,
  type RetryScheduler,
} from '../retries/index.js';
import { type ErrorCode, errorCode } from '../shared/index.js';
import type { ActiveSubscription } from '../subscriptions/index.js';
import { type Span, SpanKind, type Tracing } from '../tracing/index.js';

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

/** Why a turn made no attempt. The delivery goes on later; nothing was sent. */
type NotAttemptedReason = Extract<OutcomeReason, 'circuit_open' | 'endpoint_busy' | 'rate_limited'>;

interface NotAttempted {
  readonly kind: 'not_attempted';
  readonly reason: NotAttemptedReason;
  readonly code: ErrorCode;
  readonly message: string;
  /** For a rate limit: when its next slot is, in ms from now. */
  readonly deferMs: number | null;
}

/** How one turn of a delivery ended: an attempt was made (its report), or none was, and why. */
type TurnEnd = { readonly kind: 'attempted'; readonly report: AttemptReport } | NotAttempted;

function notAttempted(
  reason: NotAttemptedReason,
  code: ErrorCode,
  message: string,
  deferMs: number | null = null,
): NotAttempted {
  return { kind: 'not_attempted', reason, code, message, deferMs };
}

/** What the outcome record says of a turn. */
function detailsOf(attempt: number, end: TurnEnd): ResultDetails {
  if (end.kind === 'not_attempted') return { attempt, error: { code: end.code, message: end.message } };
  const { outcome, durationMs, snippet } = end.report;
  const error = outcome.code ? { code: outcome.code, message: outcome.message ?? '' } : null;
  return { attempt, httpStatus: outcome.httpStatus, durationMs, snippet, error };
}

/** The last error a retry record carries, for the next attempt and the deliveries DLQ. */
function lastErrorOf(end: TurnEnd): NonNullable<RetryRecord['lastError']> {
  if (end.kind === 'not_attempted') return { code: end.code, message: end.message, httpStatus: null };
  const { code, message, httpStatus } = end.report.outcome;
  return { code, message, httpStatus };
}

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

  constructor(private readonly deps: DeliveryRunnerDeps) {}

  async run(input: RunInput): Promise<void> {
    const { metrics } = this.deps;
    metrics.inFlight.inc();
    try {
      const key = this.orderKey(input);
      if (key === null) await this.runOnce(input, null);
      else if (input.via === 'retry') await this.runTurn(input, key);
      else await this.inLine(key, () => this.runAdmitted(input, key));
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
      if (chain && chain.length >= this.deps.maxEntityQueue) return chain.tail;
    }
    return this.deps.gate.waitForRoom(endpointOf(target));
  }

  private orderKey(input: RunInput): OrderKey | null {
    const { entity, target } = input.delivery;
    // A retry record carries an entity only if its webhook ordered by entity when it was written.
    if (entity === null || (input.via === 'event' && target.sub.ordering !== 'entity')) return null;
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
  private async runAdmitted(input: RunInput, key: OrderKey): Promise<void> {
    const stored = encodeRetry(
      this.recordOf(input, { attempt: input.attempt, retry: input.retry, dueAt: Date.now() }),
    ).toString('utf8');
    const line = await this.deps.retry(
      () => this.deps.order.admit(key, input.delivery.deliveryId, stored),
      'queueing an ordered delivery',
    );
    if (line.undriven !== null) await this.drive(key, line.undriven, 'repaired');
    switch (line.status) {
      case 'free':
        await this.runOnce(input, key);
        return;
      case 'held':
        this.deps.metrics.ordered.inc({ step: 'held' });
        return this.publish(input, 'RETRY_SCHEDULED', { attempt: input.attempt, reason: 'held' });
      case 'full':
        return this.lineFull(input);
      default:
        // 'head' or 'present': read again after a crash or a rebalance; the line already has it.
        this.deps.metrics.ordered.inc({ step: 'stale' });
    }
  }

  /**
   * A retry record of an ordered webhook: attempted only while first in its entity's line. When
   * its delivery ends, it goes on with the next ones in process (no Kafka round trip per step)
   * until one fails and takes over with a retry record of its own, or LINE_STEPS are done.
   */
  private async runTurn(driver: RunInput, key: OrderKey): Promise<void> {
    const { turn, undriven } = await this.deps.retry(
      () => this.deps.order.turn(key, driver.delivery.deliveryId),
      'checking a delivery turn',
    );
    if (undriven !== null) await this.drive(key, undriven, 'repaired');
    if (turn.role === 'stale') {
      this.deps.metrics.ordered.inc({ step: 'stale' });
      return;
    }
    let input = turn.role === 'head' ? driver : this.nextInLine(turn.record, driver);
    for (let step = 1; ; step++) {
      const state = await this.runOnce(input, key);
      if (state === 'RETRY_SCHEDULED') return; // it holds the line, driven by its own retry record
      const next = await this.deps.retry(
        () => this.deps.order.release(key, input.delivery.deliveryId, driver.delivery.deliveryId),
        'releasing an entity',
      );
      if (next === null) return;
      this.deps.metrics.ordered.inc({ step: 'released' });
      if (step >= LINE_STEPS) return this.drive(key, next, 'released');
      input = this.nextInLine(next, driver);
    }
  }

  /** The next delivery of a line, from what the line stored, to the same (current) subscription. */
  private nextInLine(stored: string, driver: RunInput): RunInput {
    return inputFromRecord(decodeRetry(Buffer.from(stored, 'utf8')), driver.delivery.target);
  }

  /** One turn of a delivery: admit → attempt → record the endpoint's health → decide what follows. */
  private async runOnce(input: RunInput, key: OrderKey | null): Promise<OutcomeState> {
    const admission = await this.admit(input);
    if (admission.kind === 'not_attempted') return this.after(input, key, admission);
    const span = input.delivery.trace ? this.startAttempt(input) : null;
    if (span) {
      // The attempt's span is the parent of what follows it (the request, the outcome).
      const trace = this.deps.tracing.within(input.delivery.trace!, span);
      input = { ...input, delivery: { ...input.delivery, trace, traceparent: this.deps.tracing.traceparent(span) } };
    }
    const report = await this.attempt(input, admission.endpoint, span);
    await this.recordHealth(input.delivery.target.sub.id, report.outcome);
    return this.after(input, key, { kind: 'attempted', report });
  }

  /**
   * The checks before an attempt, cheapest first: the circuit, the webhook's rate limit, then a
   * slot at the endpoint. The common case (circuit closed, no rate limit, endpoint not busy)
   * takes no Redis call and no wait.
   */
  private async admit(input: RunInput): Promise<{ kind: 'admitted'; endpoint: string } | NotAttempted> {
    const { breaker, metrics } = this.deps;
    const { target } = input.delivery;
    const webhookId = target.sub.id;
    let circuit = breaker.admit(webhookId);
    if (typeof circuit !== 'string') {
      circuit = await circuit.catch(() =>
        this.deps.retry(async () => breaker.admit(webhookId), 'reading the circuit state'),
      );
    }
    if (circuit === 'open') {
      return notAttempted('circuit_open', 'CIRCUIT_OPEN', 'endpoint is UNHEALTHY; waiting for a probe to succeed');
    }
    const rate = target.sub.rateLimitPerSecond;
    if (rate !== null) {
      const slot = await this.deps.retry(
        () => this.deps.rateLimiter.reserve(webhookId, rate),
        'reserving a rate-limit slot',
      );
      if ('deferMs' in slot) {
        metrics.rateLimited.inc({ result: 'deferred' });
        const message = `over rateLimitPerSecond (${rate}); next slot in ${slot.deferMs} ms`;
        return notAttempted('rate_limited', 'RATE_LIMITED', message, slot.deferMs);
      }
      if (slot.waitMs > 0) {
        metrics.rateLimited.inc({ result: 'waited' });
        await sleep(slot.waitMs);
      }
    }
    const endpoint = endpointOf(target);
    const pending = this.deps.gate.enter(endpoint);
    const entry = typeof pending === 'string' ? pending : await pending;
    if (entry === 'saturated') {
      metrics.endpointRejections.inc();
      const message = 'endpoint does not keep up: its queue is full and its expected wait too long';
      return notAttempted('endpoint_busy', 'ENDPOINT_SATURATED', message);
    }
    return { kind: 'admitted', endpoint };
  }

  /** Sends the attempt while holding the endpoint's slot; the gate learns how long it took. */
  private async attempt(input: RunInput, endpoint: string, span: Span | null): Promise<AttemptReport> {
    let report: AttemptReport;
    let throttled = false;
    const held = performance.now();
    try {
      report = await this.deps.deliverer.attempt(input.delivery, input.attempt);
      throttled = report.outcome.httpStatus === 429;
      span?.setAttributes({
        'http.response.status_code': report.outcome.httpStatus ?? 0,
        'blue.outcome.code': report.outcome.code ?? '',
      });
    } finally {
      this.deps.gate.release(endpoint, performance.now() - held, throttled);
      span?.end();
    }
    if (throttled) this.deps.metrics.endpointThrottled.inc();
    return report;
  }

  /**
   * The circuit breaker counts the endpoint's own failures only (not a refused target or a 4xx);
   * a circuit that opens or closes, and a 410 Gone, are published as status events.
   */
  private async recordHealth(webhookId: string, outcome: AttemptOutcome): Promise<void> {
    const failed = !outcome.delivered && isRetriableOutcome(outcome, this.deps.policy);
    if (outcome.delivered || failed) {
      const recorded = this.deps.breaker.record(webhookId, !failed);
      const change =
        recorded &&
        (await recorded.catch(() =>
          this.deps.retry(async () => this.deps.breaker.record(webhookId, !failed), 'recording the circuit state'),
        ));
      if (change?.state === 'opened') {
        await this.publishStatus(
          webhookId,
          'UNHEALTHY',
          'circuit_opened',
          change.consecutiveFailures,
          outcome.httpStatus,
        );
      }
      if (change?.state === 'closed') {
        await this.publishStatus(webhookId, 'HEALTHY', 'circuit_closed', 0, outcome.httpStatus);
      }
    }
    if (outcome.gone) await this.publishStatus(webhookId, 'UNHEALTHY', 'gone', 0, 410);
  }

  /**
   * What follows a turn. An attempt made: the retry policy decides. None made: a rate limit
   * defers it to its next slot, keeping its attempt number and its place on the schedule; a
   * circuit open or an endpoint busy moves along the schedule as a retriable failure would.
   */
  private next(input: RunInput, end: TurnEnd): Decision {
    const { policy } = this.deps;
    if (end.kind === 'attempted') return decide(end.report.outcome, input.retry, policy);
    if (end.deferMs !== null) return { kind: 'retry', delayMs: end.deferMs };
    return nextOnSchedule(input.retry, policy);
  }

  /** Makes what follows a turn durable: the next retry or a dead letter, then the outcome. */
  private async after(input: RunInput, key: OrderKey | null, end: TurnEnd): Promise<OutcomeState> {
    const { metrics } = this.deps;
    const decision = this.next(input, end);
    const details = detailsOf(input.attempt, end);
    let state: OutcomeState;
    switch (decision.kind) {
      case 'delivered':
        state = 'DELIVERED';
        metrics.eventToDelivery.observe(
          (Date.now() - (input.delivery.event.occurredAtMs || input.delivery.eventTimestampMs)) / 1000,
        );
        break;
      case 'final':
        state = 'FAILED';
        details.reason = decision.reason;
        break;
      case 'retry': {
        const dueAt = Date.now() + decision.delayMs;
        // A deferral made no attempt: it keeps its attempt number and its place on the schedule.
        const deferred = end.kind === 'not_attempted' && end.deferMs !== null;
        const record = deferred
          ? this.recordOf(input, { attempt: input.attempt, retry: input.retry, dueAt, end })
          : this.recordOf(input, { attempt: input.attempt + 1, retry: input.retry + 1, dueAt, end });
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
          await this.deps.scheduler.deadLetter({ ...record, dueAt: Date.now() });
          state = 'FAILED';
          details.reason = scheduled;
          break;
        }
        // A retry after an attempt made follows its failure; one without, why none was made.
        const reason = end.kind === 'attempted' ? 'failure' : end.reason;
        metrics.retriesScheduled.inc({ reason });
        state = 'RETRY_SCHEDULED';
        details.reason = reason;
        details.nextAttemptAt = dueAt;
        break;
      }
      case 'exhausted':
        await this.deps.scheduler.deadLetter(
          this.recordOf(input, { attempt: input.attempt + 1, retry: input.retry, dueAt: Date.now(), end }),
        );
        state = 'FAILED';
        details.reason = 'exhausted';
        break;
    }
    await this.publish(input, state, details);
    if (end.kind === 'attempted') metrics.observeDuration(state, end.report.durationMs / 1000);
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
      this.deps.scheduler.schedule(record, delayMs).then(
        () => 'scheduled' as const,
        (err: unknown) => {
          if (errorCode(err) !== 'RECORD_TOO_LARGE') throw err;
          return 'too_large' as const;
        },
      );
    if (key === null) return write();
    const stored = encodeRetry(record).toString('utf8');
    const line = await this.deps.retry(() => this.deps.order.hold(key, record.deliveryId, stored), 'holding an entity');
    if (line.status === 'full') return 'order_line_full';
    if (line.status !== 'head') {
      if (line.undriven !== null) await this.drive(key, line.undriven, 'repaired');
      return 'held';
    }
    const written = await write();
    if (written === 'scheduled')
      await this.deps.retry(() => this.deps.order.markDriven(key, record.deliveryId), 'marking a driver written');
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
    const next = await this.deps.retry(() => this.deps.order.release(key, deliveryId, driverId), 'releasing an entity');
    if (next === null) return;
    this.deps.metrics.ordered.inc({ step: 'released' });
    await this.drive(key, next, 'released');
  }

  /** Writes the retry record of a line's first, from what the line stored, and notes it written. */
  private async drive(key: OrderKey, stored: string, why: 'released' | 'repaired'): Promise<void> {
    const record = decodeRetry(Buffer.from(stored, 'utf8'));
    const dueAt = Math.max(record.dueAt, Date.now());
    await this.deps.scheduler.schedule({ ...record, dueAt }, dueAt - Date.now());
    await this.deps.retry(() => this.deps.order.markDriven(key, record.deliveryId), 'marking a driver written');
    if (why === 'repaired') this.deps.metrics.ordered.inc({ step: why });
  }

  private async lineFull(input: RunInput): Promise<void> {
    await this.deps.scheduler.deadLetter(
      this.recordOf(input, { attempt: input.attempt, retry: input.retry, dueAt: Date.now() }),
    );
    await this.publish(input, 'FAILED', { attempt: input.attempt, reason: 'order_line_full' });
  }

  private startAttempt(input: RunInput) {
    return this.deps.tracing.start('attempt', input.delivery.trace!, SpanKind.CLIENT, {
      'blue.webhook.id': input.delivery.target.sub.id,
      'blue.delivery.id': input.delivery.deliveryId,
      'blue.attempt': input.attempt,
    });
  }

  private async publish(input: RunInput, state: OutcomeState, details: ResultDetails): Promise<void> {
    const span = input.delivery.trace
      ? this.deps.tracing.start('outcome', input.delivery.trace, SpanKind.PRODUCER, { 'blue.outcome': state })
      : null;
    try {
      await this.deps.results.publish(input.delivery.target.sub.id, resultOf(refOf(input.delivery), state, details));
    } finally {
      span?.end();
    }
    this.deps.metrics.countDelivery(state, input.delivery.event.event);
  }

  private recordOf(input: RunInput, at: { attempt: number; retry: number; dueAt: number; end?: TurnEnd }): RetryRecord {
    const { occurredAtMs: _, ...event } = input.delivery.event;
    return {
      v: 1,
      deliveryId: input.delivery.deliveryId,
      webhookId: input.delivery.target.sub.id,
      attempt: at.attempt,
      retry: at.retry,
      dueAt: at.dueAt,
      firstAttemptAt: input.firstAttemptAt,
      eventTimestampMs: input.delivery.eventTimestampMs,
      event,
      ...(at.end ? { lastError: lastErrorOf(at.end) } : {}),
      ...(input.delivery.source ? { source: input.delivery.source } : {}),
      ...(this.orderKey(input) ? { entity: input.delivery.entity! } : {}),
    };
  }

  private publishStatus(
    webhookId: string,
    status: WebhookStatusEvent['status'],
    reason: WebhookStatusEvent['reason'],
    consecutiveFailures: number,
    httpStatus: number | null,
  ): Promise<void> {
    return this.deps.statuses.publish(webhookId, {
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
    await this.deps.results.publish(ref.webhookId, resultOf(ref, 'FAILED', { attempt, reason }));
    this.deps.metrics.countDelivery('FAILED', ref.event.event);
    if (entity === null) return;
    // The line moves on one retry record at a time; each of them ends the same way.
    const key = { webhookId: ref.webhookId, entity };
    const { turn, undriven } = await this.deps.retry(
      () => this.deps.order.turn(key, ref.deliveryId),
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

export function refOf(delivery: Delivery): DeliveryRef {
  return {
    deliveryId: delivery.deliveryId,
    webhookId: delivery.target.sub.id,
    event: delivery.event,
    ...(delivery.source ? { source: delivery.source } : {}),
  };
}

/** The endpoint a delivery goes to, for isolation: its origin. */
export function endpointOf(target: ActiveSubscription): string {
  return target.url?.origin ?? target.sub.url;
}

function chainKey(key: OrderKey): string {
  return `${key.webhookId}\n${key.entity}`;
}
