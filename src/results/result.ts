import type { EventSource } from '../codec/index.js';
import { type ErrorCode, redactBody } from '../shared/index.js';

/** Outcome states. Consumers of the results topic must accept values added later. */
export type OutcomeState = 'DELIVERED' | 'FAILED' | 'RETRY_SCHEDULED';

/**
 * Why an outcome is what it is (the `reason` field). RETRY_SCHEDULED: failure (the attempt
 * failed), circuit_open, endpoint_busy, rate_limited (no attempt was made), held (it waits behind
 * an earlier delivery of its entity). FAILED: the others. Consumers must accept values added later.
 */
export type OutcomeReason =
  | 'failure'
  | 'circuit_open'
  | 'endpoint_busy'
  | 'rate_limited'
  | 'held'
  | 'exhausted'
  | 'too_large'
  | 'refused'
  | 'gone'
  | 'invalid_url'
  | 'invalid_header'
  | 'final_status'
  | 'deleted'
  | 'disabled'
  | 'order_line_full';

/**
 * The reason an outcome names for the error code that ended its attempt or held it back: the one
 * table from codes to reasons. A final HTTP status is `gone` (410) or `final_status`.
 */
export const REASON_OF_CODE = {
  TARGET_REFUSED: 'refused',
  INVALID_URL: 'invalid_url',
  INVALID_HEADER: 'invalid_header',
  CIRCUIT_OPEN: 'circuit_open',
  ENDPOINT_SATURATED: 'endpoint_busy',
  RATE_LIMITED: 'rate_limited',
} as const satisfies Partial<Record<ErrorCode, OutcomeReason>>;

/** One record on the results topic (schemas/webhook-result.avsc). */
export interface WebhookResult {
  deliveryId: string;
  eventId: string;
  webhookId: string;
  eventType: string;
  projectId: string;
  attempt: number;
  outcome: OutcomeState;
  httpStatus: number | null;
  durationMs: number;
  error: { code: ErrorCode; message: string } | null;
  /** Epoch milliseconds. */
  timestamp: number;
  reason: OutcomeReason | null;
  nextAttemptAt: number | null;
  responseSnippet: string | null;
  /** Where the event was read, when known (attempts from retry records made before it have none). */
  source: EventSource | null;
}

/** Which delivery an outcome is about. */
export interface DeliveryRef {
  deliveryId: string;
  webhookId: string;
  event: { id: string; event: string; project: { id: string } };
  source?: EventSource;
}

/** What an outcome record says beyond its delivery and state; what is left out is null. */
export interface ResultDetails {
  attempt: number;
  /** The endpoint's answer, when an attempt got one. */
  httpStatus?: number | null;
  durationMs?: number;
  error?: { code: ErrorCode; message: string } | null;
  snippet?: string | null;
  reason?: OutcomeReason | null;
  nextAttemptAt?: number | null;
}

const MAX_MESSAGE = 1000;

export function resultOf(ref: DeliveryRef, state: OutcomeState, details: ResultDetails): WebhookResult {
  const { error } = details;
  return {
    deliveryId: ref.deliveryId,
    eventId: ref.event.id,
    webhookId: ref.webhookId,
    eventType: ref.event.event,
    projectId: ref.event.project.id,
    attempt: details.attempt,
    outcome: state,
    httpStatus: details.httpStatus ?? null,
    durationMs: details.durationMs ?? 0,
    error: error ? { code: error.code, message: error.message.slice(0, MAX_MESSAGE) } : null,
    timestamp: Date.now(),
    reason: details.reason ?? null,
    nextAttemptAt: details.nextAttemptAt ?? null,
    responseSnippet: details.snippet ? redactBody(details.snippet) : null,
    source: ref.source ? { topic: ref.source.topic, partition: ref.source.partition, offset: ref.source.offset } : null,
  };
}
