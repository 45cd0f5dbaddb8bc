import { type KafkajsClass, kafkajsPrototype } from './kafkajs-internals.js';

interface RequestQueueInternals {
  /** Epoch ms until which the broker asked this connection to hold its requests; -1 when never. */
  throttledUntil: number;
  pending: unknown[];
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** What of kafkajs's RequestQueue the fix relies on. */
export const REQUEST_QUEUE: KafkajsClass = {
  modulePath: 'src/network/requestQueue/index.js',
  className: 'RequestQueue',
  methods: ['scheduleCheckPendingRequests', 'checkPendingRequests'],
  fields: ['pending', 'throttledUntil', 'throttleCheckTimeoutId'],
  fix: 'its timer fix',
};

/** kafkajs's own interval for a pending request that is not throttled (CHECK_PENDING_REQUESTS_INTERVAL). */
const PENDING_CHECK_MS = 10;

let installed = false;

/**
 * Stops kafkajs from checking every connection's request queue once a millisecond, forever.
 *
 * Why this reaches into kafkajs. Every response a connection receives runs its RequestQueue's
 * checkPendingRequests, which ends by scheduling the next check at `throttledUntil - Date.now()`.
 * That is negative unless the broker throttled the connection (`throttledUntil` starts at -1), and
 * Node runs a timer of less than 1 ms after 1 ms. So from its first response on, each connection
 * runs a check every millisecond, which schedules the next one, whether anything is pending or
 * not (kafkajs issues #1704 and #1751; 2.2.4 is its last release, so no fix will come): hundreds of
 * checks a second on each idle connection, a measurable share of an idle dispatcher's core
 * (docs/performance.md#method-and-dated-runs), and Node 24 warns of the negative timer.
 *
 * The check is only needed while a request waits: one the broker's throttle holds back (checked
 * when the throttle ends), or one over the in-flight limit (checked every 10 ms, as kafkajs does,
 * and also at each response). With nothing pending and no throttle there is nothing to check, and
 * a request pushed later schedules its own check. That is the whole change; the rest is kafkajs's.
 */
export function installRequestQueueTimerFix(): void {
  if (installed) return;
  const requestQueue = kafkajsPrototype<RequestQueueInternals>(REQUEST_QUEUE);
  requestQueue.scheduleCheckPendingRequests = function (this: RequestQueueInternals) {
    if (this.throttleCheckTimeoutId) return; // a check is already scheduled
    const untilUnthrottled = this.throttledUntil - Date.now();
    let delayMs: number;
    if (this.pending.length > 0) delayMs = untilUnthrottled > 0 ? untilUnthrottled : PENDING_CHECK_MS;
    else if (untilUnthrottled > 0) delayMs = untilUnthrottled;
    else return; // nothing waits and nothing holds it back: no check to make
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, delayMs);
  };
  installed = true;
}
