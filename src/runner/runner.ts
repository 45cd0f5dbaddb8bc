import { type CircuitBreaker, statusEvent, type WebhookStatusEvent } from '../breaker/index.js';
import type { AttemptOutcome, AttemptReport, Deliverer, EndpointGate, RateLimiter } from '../delivery/index.js';
import type { OrderKey } from '../ordering/index.js';
import {
  type AvroPublisher,
  type DeliveryRef,
  type OutcomeReason,
  type OutcomeState,
  REASON_OF_CODE,
  type ResultDetails,
  resultOf,
  type WebhookResult,
} from '../results/index.js';
import {
  type Decision,
  decide,
  isRetriableOutcome,
  nextOnSchedule,
  type RetryPolicyOptions,
  type RetryRecord,
} from '../retries/index.js';
import { errorCode } from '../shared/index.js';
import type { ActiveSubscription } from '../subscriptions/index.js';
import { type Span, SpanKind, type Tracing } from '../tracing/index.js';
import { EntityLines, type EntityLinesDeps, type Scheduled } from './entity-lines.js';
import { endpointOf, type RunInput, refOf } from './run-input.js';

export interface DeliveryRunnerDeps extends EntityLinesDeps {
  deliverer: Deliverer;
  breaker: CircuitBreaker;
  gate: EndpointGate;
  rateLimiter: RateLimiter;
  results: AvroPublisher<WebhookResult>;
  statuses: AvroPublisher<WebhookStatusEvent>;
  policy: RetryPolicyOptions;
  tracing: Tracing;
}

/** Why a turn made no attempt. The delivery goes on later; nothing was sent. */
type NotAttemptedCode = 'CIRCUIT_OPEN' | 'ENDPOINT_SATURATED' | 'RATE_LIMITED';

interface NotAttempted {
  readonly kind: 'not_attempted';
  readonly reason: (typeof REASON_OF_CODE)[NotAttemptedCode];
  readonly code: NotAttemptedCode;
  readonly message: string;
  /** For a rate limit: when its next slot is, in ms from now. */
  readonly deferMs: number | null;
}

/** How one turn of a delivery ended: an attempt was made (its report), or none was, and why. */
type TurnEnd = { readonly kind: 'attempted'; readonly report: AttemptReport } | NotAttempted;

function notAttempted(code: NotAttemptedCode, message: string, deferMs: number | null = null): NotAttempted {
  return { kind: 'not_attempted', reason: REASON_OF_CODE[code], code, message, deferMs };
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
 * Runs one attempt of a delivery and makes what follows durable: the outcome on the results topic,
 * plus the next retry on its delay topic or the delivery in the deliveries DLQ. Resolves only once
 * all of that is acknowledged by Kafka; only then may the source offset be committed. A webhook
 * with ordering "entity" goes through its entity's line first (`EntityLines`).
 */
export class DeliveryRunner {
  private readonly lines: EntityLines;

  constructor(private readonly deps: DeliveryRunnerDeps) {
    this.lines = new EntityLines(deps);
  }

  async run(input: RunInput): Promise<void> {
    const { metrics } = this.deps;
    metrics.inFlight.inc();
    try {
      const key = this.orderKey(input);
      if (key === null) await this.runOnce(input, null);
      else if (input.via === 'retry') await this.lines.runTurn(input, key, (next) => this.runOnce(next, key));
      else await this.lines.inLine(key, () => this.runOrdered(input, key));
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
      const full = this.lines.waitForRoom({ webhookId: target.sub.id, entity });
      if (full) return full;
    }
    return this.deps.gate.waitForRoom(endpointOf(target));
  }

  /**
   * Records an outcome for a delivery that ends without an attempt (deleted or disabled webhook);
   * a retry record of an entity's line ends that delivery's turn.
   */
  async end(ref: DeliveryRef, attempt: number, reason: OutcomeReason, entity: string | null): Promise<void> {
    await this.deps.results.publish(ref.webhookId, resultOf(ref, 'FAILED', { attempt, reason }));
    this.deps.metrics.countDelivery('FAILED', ref.event.event);
    // The line moves on one retry record at a time; each of them ends the same way.
    if (entity !== null) await this.lines.endTurn({ webhookId: ref.webhookId, entity }, ref.deliveryId);
  }

  private orderKey(input: RunInput): OrderKey | null {
    const { entity, target } = input.delivery;
    // A retry record carries an entity only if its webhook ordered by entity when it was written.
    if (entity === null || (input.via === 'event' && target.sub.ordering !== 'entity')) return null;
    return { webhookId: target.sub.id, entity };
  }

  /** A new event's delivery to an ordered webhook: it goes now, or waits in its entity's line. */
  private async runOrdered(input: RunInput, key: OrderKey): Promise<void> {
    const record = this.recordOf(input, { attempt: input.attempt, retriesDone: input.retriesDone, dueAt: Date.now() });
    const place = await this.lines.join(key, record);
    if (place === 'free') await this.runOnce(input, key);
    else if (place === 'held') await this.publish(input, 'RETRY_SCHEDULED', { attempt: input.attempt, reason: 'held' });
    else if (place === 'full') {
      await this.deps.scheduler.deadLetter(record);
      await this.publish(input, 'FAILED', { attempt: input.attempt, reason: 'order_line_full' });
    }
  }

  /** One turn of a delivery: clear it → attempt → record the endpoint's health → decide what follows. */
  private async runOnce(input: RunInput, key: OrderKey | null): Promise<OutcomeState> {
    const cleared = await this.clearForAttempt(input);
    if (cleared.kind === 'not_attempted') return this.after(input, key, cleared);
    const span = input.delivery.trace ? this.startAttempt(input) : null;
    if (span) {
      // The attempt's span is the parent of what follows it (the request, the outcome).
      const trace = this.deps.tracing.within(input.delivery.trace!, span);
      input = { ...input, delivery: { ...input.delivery, trace, traceparent: this.deps.tracing.traceparent(span) } };
    }
    const report = await this.attempt(input, cleared.endpoint, span);
    await this.recordHealth(input.delivery.target.sub.id, report.outcome);
    return this.after(input, key, { kind: 'attempted', report });
  }

  /**
   * The checks before an attempt, cheapest first: the circuit, the webhook's rate limit, then a
   * slot at the endpoint. The common case (circuit closed, no rate limit, endpoint not busy)
   * takes no Redis call and no wait.
   */
  private async clearForAttempt(input: RunInput): Promise<{ kind: 'cleared'; endpoint: string } | NotAttempted> {
    const { breaker, metrics } = this.deps;
    const { target } = input.delivery;
    const webhookId = target.sub.id;
    const state = this.fromBreaker(() => breaker.admit(webhookId), 'reading the circuit state');
    const circuit = typeof state === 'string' ? state : await state;
    if (circuit === 'open') {
      return notAttempted('CIRCUIT_OPEN', 'endpoint is UNHEALTHY; waiting for a probe to succeed');
    }
    const rate = target.sub.rateLimitPerSecond;
    if (rate !== null) {
      const slot = await this.deps.untilDone(
        () => this.deps.rateLimiter.reserve(webhookId, rate),
        'reserving a rate-limit slot',
      );
      if ('deferMs' in slot) {
        metrics.rateLimited.inc({ result: 'deferred' });
        const message = `over rateLimitPerSecond (${rate}); next slot in ${slot.deferMs} ms`;
        return notAttempted('RATE_LIMITED', message, slot.deferMs);
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
      return notAttempted('ENDPOINT_SATURATED', message);
    }
    return { kind: 'cleared', endpoint };
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
    const publish = (reason: WebhookStatusEvent['reason'], failures: number, httpStatus: number | null) =>
      this.deps.statuses.publish(webhookId, statusEvent(webhookId, reason, failures, httpStatus));
    if (outcome.delivered || failed) {
      const recorded = this.fromBreaker(
        () => this.deps.breaker.record(webhookId, !failed),
        'recording the circuit state',
      );
      const change = recorded && (await recorded);
      if (change?.state === 'opened') await publish('circuit_opened', change.consecutiveFailures, outcome.httpStatus);
      if (change?.state === 'closed') await publish('circuit_closed', 0, outcome.httpStatus);
    }
    if (outcome.gone) await publish('gone', 0, 410);
  }

  /**
   * A breaker call answers from memory at once, or as a promise when it asks Redis; a promise
   * that fails is made again until it succeeds.
   */
  private fromBreaker<T>(call: () => T | Promise<T>, what: string): T | Promise<T> {
    const answer = call();
    return answer instanceof Promise ? answer.catch(() => this.deps.untilDone(async () => call(), what)) : answer;
  }

  /**
   * What follows a turn. An attempt made: the retry policy decides. None made: a rate limit
   * defers it to its next slot, keeping its attempt number and its place on the schedule; a
   * circuit open or an endpoint busy moves along the schedule as a retriable failure would.
   */
  private next(input: RunInput, end: TurnEnd): Decision {
    const { policy } = this.deps;
    if (end.kind === 'attempted') return decide(end.report.outcome, input.retriesDone, policy);
    if (end.deferMs !== null) return { kind: 'retry', delayMs: end.deferMs };
    return nextOnSchedule(input.retriesDone, policy);
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
          ? this.recordOf(input, { attempt: input.attempt, retriesDone: input.retriesDone, dueAt, end })
          : this.recordOf(input, { attempt: input.attempt + 1, retriesDone: input.retriesDone + 1, dueAt, end });
        const scheduled = await this.scheduleRetry(key, record, decision.delayMs);
        if (scheduled === 'held') {
          metrics.ordered.inc({ step: 'held' });
          state = 'RETRY_SCHEDULED';
          details.reason = 'held';
          break;
        }
        if (scheduled !== 'scheduled') {
          // Too large for a retry record even compressed: a final failure, kept in the deliveries
          // DLQ with a pointer to the event (docs/design.md#every-record-gets-an-end); or its entity's line is full.
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
          this.recordOf(input, { attempt: input.attempt + 1, retriesDone: input.retriesDone, dueAt: Date.now(), end }),
        );
        state = 'FAILED';
        details.reason = 'exhausted';
        break;
    }
    await this.publish(input, state, details);
    if (end.kind === 'attempted') metrics.observeDuration(state, end.report.durationMs / 1000);
    return state;
  }

  /** Writes the retry record; an ordered delivery's goes through its entity's line. */
  private scheduleRetry(key: OrderKey | null, record: RetryRecord, delayMs: number): Promise<Scheduled> {
    const write = () =>
      this.deps.scheduler.schedule(record, delayMs).then(
        () => 'scheduled' as const,
        (err: unknown) => {
          if (errorCode(err) !== 'RECORD_TOO_LARGE') throw err;
          return 'too_large' as const;
        },
      );
    if (key === null) return write();
    return this.lines.schedule(key, record, write);
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

  private recordOf(
    input: RunInput,
    at: { attempt: number; retriesDone: number; dueAt: number; end?: TurnEnd },
  ): RetryRecord {
    const { occurredAtMs: _, ...event } = input.delivery.event;
    return {
      v: 1,
      deliveryId: input.delivery.deliveryId,
      webhookId: input.delivery.target.sub.id,
      attempt: at.attempt,
      retry: at.retriesDone,
      dueAt: at.dueAt,
      firstAttemptAt: input.firstAttemptAt,
      eventTimestampMs: input.delivery.eventTimestampMs,
      event,
      ...(at.end ? { lastError: lastErrorOf(at.end) } : {}),
      ...(input.delivery.source ? { source: input.delivery.source } : {}),
      ...(this.orderKey(input) ? { entity: input.delivery.entity! } : {}),
    };
  }
}
