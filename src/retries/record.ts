import { type BlueEvent, type EventSource, validateEvent } from '../codec/index.js';
import { BlueWebhooksError, jsonParseProblem } from '../shared/index.js';
import { formatDuration } from './policy.js';

/**
 * A pending retry, as JSON on a delay topic (key = webhook id). It carries the whole event, so a
 * retry needs nothing but Kafka and the current subscription; it also is what the deliveries DLQ
 * holds once retries run out.
 */
export interface RetryRecord {
  v: 1;
  deliveryId: string;
  webhookId: string;
  /** The attempt this record will make (2 for the first retry). */
  attempt: number;
  /** Retries already made along the schedule (re-driving resets it to 0). */
  retry: number;
  /** Epoch ms at which the attempt is due. */
  dueAt: number;
  /** Epoch ms of the first attempt. */
  firstAttemptAt: number;
  /** Kafka timestamp of the source event. */
  eventTimestampMs: number;
  event: Omit<BlueEvent, 'occurredAtMs'>;
  /** Last failure, for people reading the DLQ. */
  lastError?: { code: string | null; message: string | null; httpStatus: number | null };
  /** Where the event was read: it can be read again from there while the topic keeps it. */
  source?: EventSource;
  /**
   * Set on a dead letter whose event was too large to keep (RECORD_TOO_LARGE): `event` then has
   * no currentValue or previousValue, and the record cannot be re-driven; `source` says where the
   * whole event is.
   */
  omitted?: 'too_large';
  /**
   * Set when the webhook orders by entity: the digest of the event's Kafka key. Such a record is
   * attempted only while it is first in its entity's line (src/ordering).
   */
  entity?: string;
}

export function encodeRetry(r: RetryRecord): Buffer {
  return Buffer.from(JSON.stringify(r));
}

const isCount = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;

/**
 * Reads a retry record and checks every field it relies on, the event included (these topics are
 * this service's own, but a record that is a bug or tampering must end as a dead letter, not as
 * an exception in the middle of a delivery).
 */
export function decodeRetry(value: Buffer | null): RetryRecord {
  let r: RetryRecord;
  try {
    r = JSON.parse(value?.toString('utf8') ?? 'null');
  } catch (err) {
    throw new BlueWebhooksError('INVALID_RETRY_RECORD', `retry record is ${jsonParseProblem(err)}`);
  }
  const ok =
    r?.v === 1 &&
    typeof r.deliveryId === 'string' &&
    typeof r.webhookId === 'string' &&
    r.webhookId.length > 0 &&
    isCount(r.attempt, 1) &&
    isCount(r.retry, 0) &&
    [r.dueAt, r.firstAttemptAt, r.eventTimestampMs].every(Number.isFinite) &&
    (r.entity === undefined || (typeof r.entity === 'string' && r.entity.length > 0 && r.entity.length <= 64));
  if (!ok) throw new BlueWebhooksError('INVALID_RETRY_RECORD', 'not a version 1 retry record');
  let event: BlueEvent;
  try {
    event = validateEvent(r.event);
  } catch (err) {
    throw new BlueWebhooksError('INVALID_RETRY_RECORD', `retry record event: ${(err as Error).message}`);
  }
  const { occurredAtMs: _, ...stored } = event;
  return { ...r, event: stored };
}

/** Delay topics, one per distinct step of the schedule: "<prefix>.<delay>", e.g. blue.webhook-retries.5m. */
export class RetryTiers {
  readonly delaysMs: readonly number[];

  constructor(
    readonly prefix: string,
    scheduleMs: readonly number[],
  ) {
    this.delaysMs = [...new Set(scheduleMs)].sort((a, b) => a - b);
  }

  topicOf(delayMs: number): string {
    return `${this.prefix}.${formatDuration(delayMs)}`;
  }

  get topics(): string[] {
    return this.delaysMs.map((d) => this.topicOf(d));
  }

  /**
   * The topic for a retry due in `delayMs`: the shortest tier at least that long, so records in
   * one topic come due in about the order they were written (a consumer waits on its head).
   */
  topicFor(delayMs: number): string {
    const tier = this.delaysMs.find((d) => d >= delayMs) ?? this.delaysMs[this.delaysMs.length - 1];
    if (tier === undefined) throw new Error('no retry tiers: RETRY_SCHEDULE is none');
    return this.topicOf(tier);
  }
}
