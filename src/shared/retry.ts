import { BlueWebhooksError } from './errors.js';

export interface BackoffOptions {
  /** First delay. Default 100 ms. */
  initialMs?: number;
  /** Longest delay. Default 5000 ms. */
  maxMs?: number;
  /** 0..1: share of each delay that is random, so replicas do not retry in step. Default 0.2. */
  jitter?: number;
}

/** Capped exponential backoff with jitter: attempt 1 waits about initialMs. */
export function backoffMs(attempt: number, opts: BackoffOptions = {}, random = Math.random): number {
  const { initialMs = 100, maxMs = 5000, jitter = 0.2 } = opts;
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - jitter + jitter * 2 * random()));
}

export function isRetriable(err: unknown): boolean {
  return err instanceof BlueWebhooksError && err.retriable;
}

/**
 * Runs an infrastructure call until it succeeds: what the service's parts are given to reach
 * Kafka, Redis or the registry (`what` names the call in the log while it waits).
 */
export type UntilDone = <T>(fn: () => Promise<T>, what: string) => Promise<T>;

export interface RetryOptions extends BackoffOptions {
  /** Stops retrying (rethrows SHUTTING_DOWN) once this is true. */
  isStopping: () => boolean;
  /** Told of every retriable failure before the wait. */
  onRetry?: (err: BlueWebhooksError, attempt: number, delayMs: number) => void;
}

/**
 * Runs `fn` until it succeeds, waiting and retrying while it fails with a retriable error (an
 * unreachable dependency). A final error is thrown at once. Infrastructure trouble therefore
 * stalls the work, it never turns it into a silent success or a loss.
 */
export async function retryWhileRetriable<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isRetriable(err)) throw err;
      if (opts.isStopping()) throw new BlueWebhooksError('SHUTTING_DOWN', 'stopped while retrying', { cause: err });
      const delay = backoffMs(attempt, opts);
      opts.onRetry?.(err as BlueWebhooksError, attempt, delay);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
