import type { BlueEvent } from '../codec/event.js';
import { BlueWebhooksError } from '../shared/errors.js';
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
}

export function encodeRetry(r: RetryRecord): Buffer {
  return Buffer.from(JSON.stringify(r));
}

export function decodeRetry(value: Buffer | null): RetryRecord {
  let r: RetryRecord;
  try {
    r = JSON.parse(value?.toString('utf8') ?? 'null');
  } catch (err) {
    throw new BlueWebhooksError('DECODE_FAILED', `retry record is not JSON: ${(err as Error).message}`);
  }
  if (r?.v !== 1 || typeof r.deliveryId !== 'string' || typeof r.webhookId !== 'string' || typeof r.dueAt !== 'number' || !r.event) {
    throw new BlueWebhooksError('DECODE_FAILED', 'not a version 1 retry record');
  }
  return r;
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
