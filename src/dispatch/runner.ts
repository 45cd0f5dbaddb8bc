import type { AttemptReport, Delivery, Deliverer } from '../delivery/deliverer.js';
import type { EndpointGate } from '../delivery/endpoint-gate.js';
import type { AttemptOutcome } from '../delivery/outcome.js';
import type { CircuitBreaker } from '../health/circuit-breaker.js';
import type { WebhookStatusEvent } from '../health/status.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AvroPublisher } from '../outcomes/publisher.js';
import { type DeliveryRef, type OutcomeState, type ResultDetails, resultOf, type WebhookResult } from '../outcomes/result.js';
import { decide, isRetriableOutcome, type RetryPolicyOptions } from '../retries/policy.js';
import type { RetryRecord } from '../retries/record.js';
import type { RetryScheduler } from '../retries/scheduler.js';
import { type ErrorCode, errorCode } from '../shared/errors.js';

export interface DeliveryRunnerDeps {
  deliverer: Deliverer;
  breaker: CircuitBreaker;
  gate: EndpointGate;
  scheduler: RetryScheduler;
  results: AvroPublisher<WebhookResult>;
  statuses: AvroPublisher<WebhookStatusEvent>;
  policy: RetryPolicyOptions;
  metrics: Metrics;
  /** Runs an infrastructure call until it succeeds. */
  retry: <T>(fn: () => Promise<T>, what: string) => Promise<T>;
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
}

/** An attempt that was not made, so that the schedule treats it like a retriable failure. */
function skipped(code: ErrorCode, message: string): AttemptOutcome {
  return { delivered: false, retriable: true, httpStatus: null, code, message, retryAfterMs: null, gone: false };
}

/**
 * Runs one attempt of a delivery and makes what follows durable: the outcome on the results topic,
 * plus the next retry on its delay topic or the delivery in the deliveries DLQ. Resolves only once
 * all of that is acknowledged by Kafka; only then may the source offset be committed.
 */
export class DeliveryRunner {
  constructor(private readonly d: DeliveryRunnerDeps) {}

  async run(x: RunInput): Promise<void> {
    const { metrics } = this.d;
    metrics.inFlight.inc();
    try {
      await this.runOnce(x);
    } finally {
      metrics.inFlight.dec();
    }
  }

  private async runOnce(x: RunInput): Promise<void> {
    const webhookId = x.delivery.target.sub.id;
    // The common case (circuit closed, endpoint not busy, success) takes no Redis call and no wait.
    let admission = this.d.breaker.admit(webhookId);
    if (typeof admission !== 'string') {
      admission = await admission.catch(() =>
        this.d.retry(async () => this.d.breaker.admit(webhookId), 'reading the circuit state'),
      );
    }
    if (admission === 'open') {
      return this.afterAttempt(x, { outcome: skipped('CIRCUIT_OPEN', 'endpoint is UNHEALTHY; waiting for a probe to succeed'), durationMs: 0, snippet: null, attempt: x.attempt }, 'circuit_open');
    }
    const endpoint = x.delivery.target.url?.origin ?? x.delivery.target.sub.url;
    const pending = this.d.gate.enter(endpoint);
    const entry = typeof pending === 'string' ? pending : await pending;
    if (entry === 'saturated') {
      this.d.metrics.endpointRejections.inc();
      return this.afterAttempt(x, { outcome: skipped('ENDPOINT_SATURATED', 'endpoint concurrency and queue are full'), durationMs: 0, snippet: null, attempt: x.attempt }, 'endpoint_busy');
    }
    let report: AttemptReport;
    const held = performance.now();
    try {
      report = await this.d.deliverer.attempt(x.delivery, x.attempt);
    } finally {
      this.d.gate.release(endpoint, performance.now() - held);
    }
    // Only the endpoint's own failures count against its health (not a refused target or a 4xx).
    const failed = !report.outcome.delivered && isRetriableOutcome(report.outcome, this.d.policy);
    if (report.outcome.delivered || failed) {
      const recorded = this.d.breaker.record(webhookId, !failed);
      const t =
        recorded &&
        (await recorded.catch(() =>
          this.d.retry(async () => this.d.breaker.record(webhookId, !failed), 'recording the circuit state'),
        ));
      if (t?.state === 'opened') await this.publishStatus(webhookId, 'UNHEALTHY', 'circuit_opened', t.consecutiveFailures, report.outcome.httpStatus);
      if (t?.state === 'closed') await this.publishStatus(webhookId, 'HEALTHY', 'circuit_closed', 0, report.outcome.httpStatus);
    }
    if (report.outcome.gone) await this.publishStatus(webhookId, 'UNHEALTHY', 'gone', 0, 410);
    return this.afterAttempt(x, report, report.outcome.delivered ? null : 'failure');
  }

  private async afterAttempt(x: RunInput, report: AttemptReport, retryReason: string | null): Promise<void> {
    const { metrics } = this.d;
    const decision = decide(report.outcome, x.retry, this.d.policy);
    const details: ResultDetails = { attempt: x.attempt, outcome: report.outcome, durationMs: report.durationMs, snippet: report.snippet };
    let state: OutcomeState;
    switch (decision.kind) {
      case 'delivered':
        state = 'DELIVERED';
        metrics.eventToDelivery.observe((Date.now() - (x.delivery.event.occurredAtMs || x.delivery.eventTimestampMs)) / 1000);
        break;
      case 'final':
        state = 'FAILED';
        details.reason = decision.reason;
        break;
      case 'retry': {
        const dueAt = Date.now() + decision.delayMs;
        const scheduled = await this.d.scheduler.schedule(this.retryRecord(x, report, dueAt, x.retry + 1), decision.delayMs).then(
          () => true,
          (err: unknown) => {
            if (errorCode(err) !== 'RECORD_TOO_LARGE') throw err;
            return false;
          },
        );
        if (!scheduled) {
          // Its event is too large for a retry record even compressed: a final failure, kept in
          // the deliveries DLQ with a pointer to the event (README, "Every record gets an end").
          await this.d.scheduler.deadLetter(this.retryRecord(x, report, Date.now(), x.retry));
          state = 'FAILED';
          details.reason = 'too_large';
          break;
        }
        metrics.retriesScheduled.inc({ reason: retryReason ?? 'failure' });
        state = 'RETRY_SCHEDULED';
        details.reason = retryReason;
        details.nextAttemptAt = dueAt;
        break;
      }
      case 'exhausted':
        await this.d.scheduler.deadLetter(this.retryRecord(x, report, Date.now(), x.retry));
        state = 'FAILED';
        details.reason = 'exhausted';
        break;
    }
    await this.d.results.publish(x.delivery.target.sub.id, resultOf(refOf(x.delivery), state, details));
    metrics.countDelivery(state, x.delivery.event.event);
    if (report.durationMs > 0) metrics.observeDuration(state, report.durationMs / 1000);
  }

  private retryRecord(x: RunInput, report: AttemptReport, dueAt: number, retry: number): RetryRecord {
    const { occurredAtMs: _, ...event } = x.delivery.event;
    const o = report.outcome;
    return {
      v: 1,
      deliveryId: x.delivery.deliveryId,
      webhookId: x.delivery.target.sub.id,
      attempt: x.attempt + 1,
      retry,
      dueAt,
      firstAttemptAt: x.firstAttemptAt,
      eventTimestampMs: x.delivery.eventTimestampMs,
      event,
      lastError: { code: o.code, message: o.message, httpStatus: o.httpStatus },
      ...(x.delivery.source ? { source: x.delivery.source } : {}),
    };
  }

  private publishStatus(
    webhookId: string,
    status: WebhookStatusEvent['status'],
    reason: WebhookStatusEvent['reason'],
    consecutiveFailures: number,
    httpStatus: number | null,
  ): Promise<void> {
    return this.d.statuses.publish(webhookId, { webhookId, status, reason, consecutiveFailures, httpStatus, timestamp: Date.now() });
  }

  /** Records an outcome for a delivery that ends without an attempt (deleted or disabled webhook). */
  async end(ref: DeliveryRef, attempt: number, reason: string): Promise<void> {
    await this.d.results.publish(ref.webhookId, resultOf(ref, 'FAILED', { attempt, reason }));
    this.d.metrics.countDelivery('FAILED', ref.event.event);
  }
}

export function refOf(d: Delivery): DeliveryRef {
  return { deliveryId: d.deliveryId, webhookId: d.target.sub.id, event: d.event };
}
