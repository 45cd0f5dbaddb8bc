import { type Delivery, eventPayload } from '../delivery/index.js';
import type { DeliveryRef } from '../results/index.js';
import type { RetryRecord } from '../retries/index.js';
import type { ActiveSubscription } from '../subscriptions/index.js';

/** One attempt of one delivery, with where it stands on the retry schedule. */
export interface RunInput {
  delivery: Delivery;
  /** 1 for the first attempt. */
  attempt: number;
  /** Steps of the retry schedule already taken (a retry record's `retry`). */
  retriesDone: number;
  /** Epoch ms of the first attempt (now, for a first attempt). */
  firstAttemptAt: number;
  /** A new event, or a retry record (for an ordered webhook, the driver of its entity's line). */
  via: 'event' | 'retry';
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
    retriesDone: r.retry,
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
