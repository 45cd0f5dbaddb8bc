import type { WebhookResult } from '../../src/results/result.js';

/**
 * The longest time any attempt started after it was due, from the outcomes alone: attempt k+1
 * started at (its timestamp - its duration) and was due at attempt k's nextAttemptAt.
 */
export function maxRetryLatenessMs(results: readonly WebhookResult[]): number {
  const byDelivery = new Map<string, WebhookResult[]>();
  for (const r of results) byDelivery.set(r.deliveryId, [...(byDelivery.get(r.deliveryId) ?? []), r]);
  let max = 0;
  for (const list of byDelivery.values()) {
    list.sort((a, b) => a.attempt - b.attempt);
    for (let i = 1; i < list.length; i++) {
      const due = list[i - 1]!.nextAttemptAt;
      if (due === null || list[i]!.attempt !== list[i - 1]!.attempt + 1) continue;
      max = Math.max(max, list[i]!.timestamp - list[i]!.durationMs - due);
    }
  }
  return max;
}
