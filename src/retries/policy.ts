import type { AttemptOutcome } from '../delivery/index.js';
import { type OutcomeReason, REASON_OF_CODE } from '../results/index.js';

export interface RetryPolicyOptions {
  /** Delay before each retry, in order (RETRY_SCHEDULE). */
  scheduleMs: readonly number[];
  /** 0..1: each delay is shortened by up to this share, at random (RETRY_JITTER). */
  jitter: number;
  /** Longest Retry-After honoured (RETRY_AFTER_MAX_MS). */
  retryAfterMaxMs: number;
  /** HTTP statuses retried although 4xx (RETRY_ON_STATUS). */
  retryOnStatus: ReadonlySet<number>;
}

/** What to do after an attempt. */
export type Decision =
  | { kind: 'delivered' }
  | { kind: 'final'; reason: OutcomeReason }
  | { kind: 'retry'; delayMs: number }
  | { kind: 'exhausted' };

export function isRetriableOutcome(outcome: AttemptOutcome, policy: RetryPolicyOptions): boolean {
  return outcome.retriable || (outcome.httpStatus !== null && policy.retryOnStatus.has(outcome.httpStatus));
}

/**
 * The one function that turns an attempt's outcome and its retry number into what happens next.
 * `retry` is how many retries have already been made (0 after the first attempt). Jitter only
 * shortens a delay, so a retry never lands later than its tier's nominal time; Retry-After can
 * lengthen it, up to retryAfterMaxMs.
 */
export function decide(
  outcome: AttemptOutcome,
  retry: number,
  policy: RetryPolicyOptions,
  random = Math.random,
): Decision {
  if (outcome.delivered) return { kind: 'delivered' };
  if (!isRetriableOutcome(outcome, policy)) return { kind: 'final', reason: finalReason(outcome) };
  return nextOnSchedule(retry, policy, outcome.retryAfterMs, random);
}

/**
 * The schedule's next step after retry number `retry`: a retry, or exhausted. Also what follows
 * a turn that made no attempt (circuit open, endpoint busy), as it would a retriable failure.
 */
export function nextOnSchedule(
  retry: number,
  policy: RetryPolicyOptions,
  retryAfterMs: number | null = null,
  random = Math.random,
): Decision {
  const base = policy.scheduleMs[retry];
  if (base === undefined) return { kind: 'exhausted' };
  const jittered = Math.round(base * (1 - policy.jitter * random()));
  const retryAfter = retryAfterMs === null ? 0 : Math.min(retryAfterMs, policy.retryAfterMaxMs);
  return { kind: 'retry', delayMs: Math.max(jittered, retryAfter) };
}

function finalReason(outcome: AttemptOutcome): OutcomeReason {
  if (outcome.code !== null && Object.hasOwn(REASON_OF_CODE, outcome.code))
    return REASON_OF_CODE[outcome.code as keyof typeof REASON_OF_CODE];
  return outcome.gone ? 'gone' : 'final_status';
}

/** Formats a schedule back into the RETRY_SCHEDULE syntax (topic names use it). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0 && ms >= size) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
