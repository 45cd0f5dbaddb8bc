// The delivery runner's decisions, with fakes for everything around it (no Kafka, no Redis, no
// HTTP): what one turn of a delivery writes (outcome, retry record, dead letter, status event)
// for each way it can end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WebhookStatusEvent } from '../../src/breaker/index.js';
import type { AttemptReport, Delivery } from '../../src/delivery/index.js';
import { classifyAttempt, eventPayload } from '../../src/delivery/index.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { Metrics } from '../../src/metrics/index.js';
import type { WebhookResult } from '../../src/results/index.js';
import type { RetryRecord } from '../../src/retries/index.js';
import { DeliveryRunner, type DeliveryRunnerDeps, type RunInput } from '../../src/runner/index.js';
import { BlueWebhooksError } from '../../src/shared/index.js';
import type { Subscription } from '../../src/subscriptions/index.js';
import { activate } from '../../src/subscriptions/index.js';
import { Tracing } from '../../src/tracing/index.js';

const SCHEDULE_MS = [1000, 2000];

interface World {
  runner: DeliveryRunner;
  metrics: Metrics;
  /** What the endpoint was sent (attempt numbers). */
  attempts: number[];
  results: WebhookResult[];
  scheduled: { record: RetryRecord; delayMs: number }[];
  deadLetters: RetryRecord[];
  statuses: WebhookStatusEvent[];
  /** What the circuit breaker was told: true for a success. */
  health: boolean[];
}

interface Setup {
  /** The endpoint's answers, in turn: an HTTP status, or an error thrown by the request. */
  answers?: (number | Error)[];
  circuit?: 'closed' | 'open';
  rate?: { waitMs: number } | { deferMs: number };
  gate?: 'entered' | 'saturated';
  /** Retry records cannot be written: too large even compressed. */
  retryTooLarge?: boolean;
  subscription?: Partial<Subscription>;
}

function world(setup: Setup = {}): World {
  const w: Omit<World, 'runner'> = {
    metrics: new Metrics({ defaultMetrics: false }),
    attempts: [],
    results: [],
    scheduled: [],
    deadLetters: [],
    statuses: [],
    health: [],
  };
  const answers = [...(setup.answers ?? [200])];
  const deps = {
    deliverer: {
      async attempt(_delivery: Delivery, attempt: number): Promise<AttemptReport> {
        w.attempts.push(attempt);
        const answer = answers.length > 1 ? answers.shift()! : answers[0]!;
        const result = typeof answer === 'number' ? { status: answer, headers: {} } : { error: answer };
        return { outcome: classifyAttempt(result), durationMs: 12, snippet: null, attempt };
      },
    },
    breaker: {
      admit: () => setup.circuit ?? 'closed',
      record: (_webhookId: string, success: boolean) => {
        w.health.push(success);
        return undefined;
      },
    },
    gate: { enter: () => setup.gate ?? 'entered', release: () => {}, waitForRoom: () => undefined },
    rateLimiter: { reserve: async () => setup.rate ?? { waitMs: 0 } },
    order: {},
    maxEntityQueue: 256,
    scheduler: {
      async schedule(record: RetryRecord, delayMs: number) {
        if (setup.retryTooLarge) throw new BlueWebhooksError('RECORD_TOO_LARGE', 'too large');
        w.scheduled.push({ record, delayMs });
      },
      async deadLetter(record: RetryRecord) {
        w.deadLetters.push(record);
      },
    },
    results: { publish: async (_key: string, result: WebhookResult) => void w.results.push(result) },
    statuses: { publish: async (_key: string, status: WebhookStatusEvent) => void w.statuses.push(status) },
    policy: { scheduleMs: SCHEDULE_MS, jitter: 0, retryAfterMaxMs: 3_600_000, retryOnStatus: new Set<number>() },
    metrics: w.metrics,
    untilDone: <T>(fn: () => Promise<T>) => fn(),
    tracing: new Tracing({ endpoint: '', serviceName: 'test', instanceId: 'test' }),
  } as unknown as DeliveryRunnerDeps;
  return { ...w, runner: new DeliveryRunner(deps) };
}

/** Attempt `attempt` of a delivery, with `retry` retries already made. */
function input(setup: Setup = {}, attempt = 1, retry = attempt - 1): RunInput {
  const event = { ...sampleEvent({ eventId: 'evt_runner' }), occurredAtMs: Date.now() };
  const target = activate(
    sampleSubscription({ id: 'wh_runner', url: 'http://127.0.0.1:1/hook', ...setup.subscription }),
  );
  const delivery: Delivery = {
    deliveryId: 'msg_runner',
    event,
    payload: eventPayload(event),
    target,
    eventTimestampMs: Date.now(),
    entity: null,
  };
  return { delivery, attempt, retriesDone: retry, firstAttemptAt: Date.now(), via: attempt === 1 ? 'event' : 'retry' };
}

async function run(setup: Setup = {}, attempt = 1): Promise<World> {
  const w = world(setup);
  await w.runner.run(input(setup, attempt));
  return w;
}

const only = <T>(xs: T[]): T => {
  assert.equal(xs.length, 1, `one expected, got ${xs.length}`);
  return xs[0]!;
};

async function durationsObserved(metrics: Metrics): Promise<number> {
  const histogram = await metrics.deliveryDuration.get();
  return histogram.values.filter((v) => v.metricName?.endsWith('_count')).reduce((n, v) => n + v.value, 0);
}

test('a 2xx is DELIVERED: one outcome with its status and duration, nothing else written', async () => {
  const w = await run({ answers: [204] });
  const result = only(w.results);
  assert.deepEqual(
    [result.outcome, result.attempt, result.httpStatus, result.durationMs, result.reason, result.error],
    ['DELIVERED', 1, 204, 12, null, null],
  );
  assert.deepEqual([w.scheduled.length, w.deadLetters.length, w.statuses.length], [0, 0, 0]);
  assert.deepEqual(w.health, [true]);
  assert.equal(await durationsObserved(w.metrics), 1);
});

test('a 5xx schedules the next attempt on the schedule, and counts against the endpoint', async () => {
  const w = await run({ answers: [503] });
  const result = only(w.results);
  assert.deepEqual([result.outcome, result.reason, result.httpStatus], ['RETRY_SCHEDULED', 'failure', 503]);
  const { record, delayMs } = only(w.scheduled);
  assert.equal(delayMs, SCHEDULE_MS[0]);
  assert.deepEqual([record.attempt, record.retry], [2, 1]);
  assert.equal(record.lastError?.httpStatus, 503);
  assert.ok(result.nextAttemptAt! >= Date.now() + SCHEDULE_MS[0]! - 1000);
  assert.deepEqual(w.health, [false]);
});

test('a failure after the last retry is exhausted: FAILED, and the delivery goes to the deliveries DLQ', async () => {
  const w = await run({ answers: [500] }, SCHEDULE_MS.length + 1);
  const result = only(w.results);
  assert.deepEqual([result.outcome, result.reason], ['FAILED', 'exhausted']);
  assert.equal(w.scheduled.length, 0);
  assert.equal(only(w.deadLetters).attempt, SCHEDULE_MS.length + 2);
});

test('a 4xx is final and does not count against the endpoint; a 410 also publishes UNHEALTHY gone', async () => {
  const bad = await run({ answers: [400] });
  assert.deepEqual([only(bad.results).outcome, only(bad.results).reason], ['FAILED', 'final_status']);
  assert.deepEqual([bad.health, bad.scheduled.length, bad.deadLetters.length], [[], 0, 0]);

  const gone = await run({ answers: [410] });
  assert.deepEqual([only(gone.results).outcome, only(gone.results).reason], ['FAILED', 'gone']);
  const status = only(gone.statuses);
  assert.deepEqual([status.status, status.reason, status.httpStatus], ['UNHEALTHY', 'gone', 410]);
});

test('an open circuit makes no attempt: nothing is sent, the schedule moves on, and no duration is observed', async () => {
  const w = await run({ circuit: 'open' });
  assert.deepEqual(w.attempts, []);
  const result = only(w.results);
  assert.deepEqual(
    [result.outcome, result.reason, result.httpStatus, result.durationMs, result.error?.code],
    ['RETRY_SCHEDULED', 'circuit_open', null, 0, 'CIRCUIT_OPEN'],
  );
  const { record, delayMs } = only(w.scheduled);
  assert.deepEqual([record.attempt, record.retry, delayMs], [2, 1, SCHEDULE_MS[0]]);
  assert.equal(record.lastError?.code, 'CIRCUIT_OPEN');
  assert.equal(await durationsObserved(w.metrics), 0);
});

test('an open circuit past the last retry is exhausted like a failure', async () => {
  const w = await run({ circuit: 'open' }, SCHEDULE_MS.length + 1);
  assert.deepEqual(w.attempts, []);
  assert.deepEqual([only(w.results).outcome, only(w.results).reason], ['FAILED', 'exhausted']);
  assert.equal(w.deadLetters.length, 1);
});

test('a busy endpoint makes no attempt: endpoint_busy, on the schedule', async () => {
  const w = await run({ gate: 'saturated' });
  assert.deepEqual(w.attempts, []);
  assert.deepEqual([only(w.results).reason, only(w.results).error?.code], ['endpoint_busy', 'ENDPOINT_SATURATED']);
  assert.equal(only(w.scheduled).delayMs, SCHEDULE_MS[0]);
});

test('a rate limit defers to its next slot and keeps the attempt number and the place on the schedule', async () => {
  const w = await run({ rate: { deferMs: 750 }, subscription: { rateLimitPerSecond: 2 } }, 2);
  assert.deepEqual(w.attempts, []);
  assert.deepEqual([only(w.results).outcome, only(w.results).reason], ['RETRY_SCHEDULED', 'rate_limited']);
  const { record, delayMs } = only(w.scheduled);
  assert.deepEqual([record.attempt, record.retry, delayMs], [2, 1, 750]);
  assert.equal(record.lastError?.code, 'RATE_LIMITED');
});

test('a retry record too large to write ends the delivery: FAILED too_large, kept in the deliveries DLQ', async () => {
  const w = await run({ answers: [500], retryTooLarge: true });
  assert.deepEqual([only(w.results).outcome, only(w.results).reason], ['FAILED', 'too_large']);
  assert.equal(only(w.deadLetters).deliveryId, 'msg_runner');
});

test('a request error is retried with its code; a refused target is final', async () => {
  const timeout = await run({ answers: [new BlueWebhooksError('TIMEOUT', 'no answer', { retriable: true })] });
  assert.deepEqual([only(timeout.results).reason, only(timeout.results).error?.code], ['failure', 'TIMEOUT']);

  const refused = await run({ answers: [new BlueWebhooksError('TARGET_REFUSED', 'internal address')] });
  assert.deepEqual([only(refused.results).outcome, only(refused.results).reason], ['FAILED', 'refused']);
  assert.deepEqual(refused.health, []);
});
