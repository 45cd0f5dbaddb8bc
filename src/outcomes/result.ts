import type { AttemptReport, Delivery } from '../delivery/deliverer.js';

/** Outcome states. Consumers of the results topic must accept values added later. */
export type OutcomeState = 'DELIVERED' | 'FAILED';

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
  error: { code: string; message: string } | null;
  /** Epoch milliseconds. */
  timestamp: number;
  reason: string | null;
  nextAttemptAt: number | null;
  responseSnippet: string | null;
}

const MAX_MESSAGE = 1000;

export function resultOf(d: Delivery, r: AttemptReport, outcome: OutcomeState, reason: string | null = null): WebhookResult {
  const o = r.outcome;
  return {
    deliveryId: d.deliveryId,
    eventId: d.event.id,
    webhookId: d.target.sub.id,
    eventType: d.event.event,
    projectId: d.event.project.id,
    attempt: r.attempt,
    outcome,
    httpStatus: o.httpStatus,
    durationMs: r.durationMs,
    error: o.code ? { code: o.code, message: (o.message ?? '').slice(0, MAX_MESSAGE) } : null,
    timestamp: Date.now(),
    reason,
    nextAttemptAt: null,
    responseSnippet: r.snippet,
  };
}
