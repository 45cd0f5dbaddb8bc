import type { Context } from '@opentelemetry/api';
import type { BlueEvent, EventSource } from '../codec/index.js';
import { BlueWebhooksError } from '../shared/index.js';
import type { ActiveSubscription } from '../subscriptions/index.js';
import { type AttemptOutcome, classifyAttempt } from './classify.js';
import type { HttpClient } from './http-client.js';
import { deliveryBody, type EventPayload } from './payload.js';
import { blueSignature, standardSignature } from './signing.js';

/** One (event, webhook) pair to deliver. */
export interface Delivery {
  readonly deliveryId: string;
  readonly event: BlueEvent;
  readonly payload: EventPayload;
  readonly target: ActiveSubscription;
  /** Kafka timestamp of the event, used when occurredAt is missing. */
  readonly eventTimestampMs: number;
  /** Where the event was read, when known (retry records made before it have none). */
  readonly source?: EventSource;
  /** Digest of the event's Kafka key, for a webhook that orders by entity (else null). */
  readonly entity: string | null;
  /** The trace this delivery belongs to (tracing on, first attempts); its spans are children. */
  readonly trace?: Context;
  /** The W3C traceparent of this attempt's span, sent on to the endpoint. */
  readonly traceparent?: string;
}

export interface AttemptReport {
  readonly outcome: AttemptOutcome;
  readonly durationMs: number;
  readonly snippet: string | null;
  readonly attempt: number;
}

// What RFC 9110 allows in a field value (visible ASCII, space, tab, obs-text), as undici checks it.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** The name of the first header whose value is not a valid field value, or null. */
export function invalidHeader(headers: Record<string, string>): string | null {
  for (const name in headers) if (!HEADER_VALUE.test(headers[name]!)) return name;
  return null;
}

/** Builds, signs and sends one attempt; never throws. */
export class Deliverer {
  constructor(
    private readonly http: HttpClient,
    private readonly userAgent: string,
  ) {}

  async attempt(delivery: Delivery, attempt: number): Promise<AttemptReport> {
    const { url, webhookJson } = delivery.target;
    // Encoded once: both signatures and the request use the same bytes.
    const body = Buffer.from(deliveryBody(delivery.payload, webhookJson), 'utf8');
    if (!url) {
      const error = new BlueWebhooksError('INVALID_URL', 'the webhook URL cannot be parsed');
      return { outcome: classifyAttempt({ error }), durationMs: 0, snippet: null, attempt };
    }
    const headers = this.headers(delivery, body, attempt);
    const bad = invalidHeader(headers);
    if (bad) {
      // undici would throw while a pool slot is held; no value a user or producer chose gets that far.
      const error = new BlueWebhooksError(
        'INVALID_HEADER',
        `header ${bad} has a character that a header value cannot carry`,
      );
      return { outcome: classifyAttempt({ error }), durationMs: 0, snippet: null, attempt };
    }
    const r = await this.http.post({ url, headers, body });
    return { outcome: classifyAttempt(r), durationMs: r.durationMs, snippet: r.snippet, attempt };
  }

  headers(delivery: Delivery, body: Buffer, attempt: number): Record<string, string> {
    const timestampSec = Math.floor(Date.now() / 1000);
    const h: Record<string, string> = {
      // The owner's, first: none of their names is one of these (validateSubscription refuses them).
      ...delivery.target.sub.headers,
      'content-type': 'application/json',
      'user-agent': this.userAgent,
      'x-blue-delivery': delivery.deliveryId,
      'x-blue-event': delivery.event.event,
      'x-blue-attempt': String(attempt),
      'webhook-id': delivery.deliveryId,
      'webhook-timestamp': String(timestampSec),
    };
    if (delivery.traceparent) h.traceparent = delivery.traceparent;
    const { secret, previousSecret } = delivery.target.sub;
    if (secret) {
      h['x-blue-signature'] = blueSignature(secret, body);
      let signatures = standardSignature(secret, delivery.deliveryId, timestampSec, body);
      // During a rotation both secrets sign, the current one first (Standard Webhooks lists several).
      if (previousSecret && Date.now() < delivery.target.previousSecretUntil) {
        signatures += ` ${standardSignature(previousSecret, delivery.deliveryId, timestampSec, body)}`;
      }
      h['webhook-signature'] = signatures;
    }
    return h;
  }
}
