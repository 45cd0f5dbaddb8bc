/** How often the delay is sampled, in ms. */
const SAMPLE_MS = 20;
/** How many samples one window holds: `recentMs` covers between one and two windows (0.5–1 s). */
const WINDOW_SAMPLES = 25;

/**
 * How late this process runs its own callbacks now: the longest event-loop delay seen in the last
 * half second to second, from how late a 20 ms timer fires.
 *
 * Why it matters: a time measured around an await (a request from send to reply) includes the
 * wait for this process's own loop. A reply that arrives while the loop works through a fetched
 * batch sits in its socket until the loop gets to it. On a starved machine that wait reaches
 * hundreds of milliseconds, and a 20 ms endpoint looks like a 300 ms one. The endpoint gate
 * subtracts this delay from what it measures, so that it judges the endpoint, not us.
 *
 * (Node's own `monitorEventLoopDelay` histogram was tried first: it did not see a 200 ms block of
 * the loop, its largest value stayed at 14 ms.)
 */
export class LoopDelay {
  private timer: NodeJS.Timeout | null = null;
  private expectedAt = 0;
  private samples = 0;
  private currentMaxMs = 0;
  private previousMaxMs = 0;

  start(): void {
    if (this.timer) return;
    this.expectedAt = performance.now() + SAMPLE_MS;
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The longest loop delay of the current and the previous window, in ms (0 when not started). */
  recentMs(): number {
    // A loop blocked right now has not run the timer yet: count the block so far too.
    const pending = this.timer ? performance.now() - this.expectedAt : 0;
    return Math.max(this.previousMaxMs, this.currentMaxMs, pending);
  }

  private sample(): void {
    const now = performance.now();
    this.currentMaxMs = Math.max(this.currentMaxMs, now - this.expectedAt);
    this.expectedAt = now + SAMPLE_MS;
    if (++this.samples < WINDOW_SAMPLES) return;
    this.previousMaxMs = this.currentMaxMs;
    this.currentMaxMs = 0;
    this.samples = 0;
  }
}
