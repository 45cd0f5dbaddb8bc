export interface EndpointGateOptions {
  /** Deliveries under way to one endpoint. */
  maxConcurrency: number;
  /** Deliveries queued for one endpoint before callers wait for room. */
  maxQueue: number;
  /** Longest expected wait for a slot; an endpoint beyond it does not keep up. */
  maxWaitMs: number;
  /** An idle endpoint's lane (and what it learned) is forgotten after this long. Default 600000 ms. */
  idleLaneMs?: number;
  /** Clock, for tests. Default Date.now. */
  now?: () => number;
  /**
   * How late this process runs its own callbacks now, in ms (src/shared/loop-delay.ts): taken off
   * every time the gate measures, so the endpoint is not blamed for our own wait. Default none.
   */
  ownDelayMs?: () => number;
}

/** What asking for a slot at an endpoint gives: one (now or after a wait), or none because it does not keep up. */
export type GateEntry = 'entered' | 'saturated';

interface Lane {
  active: number;
  /** Concurrency allowed now: maxConcurrency, halved by each 429, regained one per `limit` completions. */
  limit: number;
  /** Queued deliveries, each waiting for a slot. */
  waiting: (() => void)[];
  /** Callers waiting for room in a full queue (backpressure). */
  room: (() => void)[];
  /** Moving average of how long a delivery holds a slot (0 until the first completion). */
  serviceMs: number;
  /** Since when the lane has had work and no completion (or its last completion). */
  silentSince: number;
}

const EWMA = 0.2;

/**
 * Isolation between endpoints (origins), and backpressure for bursts.
 *
 * Each endpoint gets at most `limit` deliveries at once (ENDPOINT_MAX_CONCURRENCY, lowered by
 * 429s) and a queue of `maxQueue`. What happens past a full queue depends on whether the endpoint
 * *keeps up*: whether one more delivery would get a slot within `maxWaitMs`, judged from its own
 * completions (a moving average of the last few) and from how long it has been silent.
 *
 * - An endpoint that keeps up is waited for. `waitForRoom` lets the caller (the events pipeline,
 *   one partition's loop) wait until the queue has room, so a burst is delivered at the
 *   endpoint's pace while the partitions feeding it stop fetching: memory stays bounded and
 *   nothing is diverted. `enter` past a full queue still queues (callers that did not wait, such
 *   as the retry path, add at most what the endpoint completes within `maxWaitMs`).
 * - An endpoint that does not keep up (slow, hanging) is refused: `enter` says 'saturated' and
 *   the delivery takes the retry path, so it can hold only its own share of the global in-flight
 *   bound and never blocks a partition for long.
 *
 * A cold endpoint (no completion yet) is on probation: silence since it became busy counts as
 * service time, so a fast one is waited for from its first burst, and one that never answers is
 * judged slow once (queue + 1) × silence / limit reaches maxWaitMs (about 300 ms of silence with
 * the defaults). A wait for room is itself bounded by maxWaitMs.
 */
export class EndpointGate {
  private readonly lanes = new Map<string, Lane>();
  private readonly now: () => number;
  private readonly ownDelayMs: () => number;
  private readonly idleLaneMs: number;
  private lastSweepAt: number;

  constructor(private readonly options: EndpointGateOptions) {
    this.now = options.now ?? Date.now;
    this.ownDelayMs = options.ownDelayMs ?? (() => 0);
    this.idleLaneMs = options.idleLaneMs ?? 600_000;
    this.lastSweepAt = this.now();
  }

  /** 'entered' when a slot is held now (release it!); 'saturated' when the endpoint does not keep up; otherwise a promise of a slot. */
  enter(endpoint: string): GateEntry | Promise<GateEntry> {
    const lane = this.lane(endpoint);
    if (lane.active === 0 && lane.waiting.length === 0) lane.silentSince = this.now();
    if (lane.active < Math.floor(lane.limit)) {
      lane.active++;
      return 'entered';
    }
    if (lane.waiting.length >= this.options.maxQueue && !this.keepsUp(lane)) return 'saturated';
    return new Promise<GateEntry>((resolve) => lane.waiting.push(() => resolve('entered')));
  }

  /**
   * Backpressure: nothing when the endpoint's queue has room or the endpoint does not keep up
   * (`enter` then refuses at once); otherwise a promise that resolves when a queued delivery gets
   * its slot, or after maxWaitMs.
   */
  waitForRoom(endpoint: string): Promise<void> | undefined {
    const lane = this.lanes.get(endpoint);
    if (!lane || lane.waiting.length < this.options.maxQueue || !this.keepsUp(lane)) return undefined;
    return new Promise<void>((resolve) => {
      const onRoom = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        lane.room.splice(lane.room.indexOf(onRoom), 1);
        resolve();
      }, this.options.maxWaitMs);
      lane.room.push(onRoom);
    });
  }

  /** Frees a slot; `heldMs` is how long the delivery held it; `throttled` when the endpoint answered 429. */
  release(endpoint: string, heldMs: number, throttled = false): void {
    const lane = this.lanes.get(endpoint);
    if (!lane) return;
    // What the endpoint took: the hold less the time the reply may have waited for our own loop.
    // Kept above 0, which marks a lane that has not learned yet.
    const serviceMs = Math.max(1, heldMs - this.ownDelayMs());
    lane.serviceMs = lane.serviceMs === 0 ? serviceMs : lane.serviceMs * (1 - EWMA) + serviceMs * EWMA;
    lane.silentSince = this.now();
    // Additive increase, multiplicative decrease (as TCP does): a 429 halves what the endpoint gets.
    lane.limit = throttled
      ? Math.max(1, lane.limit / 2)
      : Math.min(this.options.maxConcurrency, lane.limit + 1 / lane.limit);
    lane.active--;
    while (lane.active < Math.floor(lane.limit) && lane.waiting.length > 0) {
      lane.active++;
      lane.waiting.shift()!();
      lane.room.shift()?.();
    }
    // The lane stays, with what it learned, until it has been idle for idleLaneMs.
  }

  /** Endpoints with a lane (for tests and debugging). */
  get laneCount(): number {
    return this.lanes.size;
  }

  /** Deliveries under way and queued, and the concurrency allowed now, per endpoint (for tests and debugging). */
  load(endpoint: string): { active: number; waiting: number; limit: number } {
    const lane = this.lanes.get(endpoint);
    return {
      active: lane?.active ?? 0,
      waiting: lane?.waiting.length ?? 0,
      limit: Math.floor(lane?.limit ?? this.options.maxConcurrency),
    };
  }

  private lane(endpoint: string): Lane {
    let lane = this.lanes.get(endpoint);
    if (!lane) {
      this.sweepIdle();
      lane = {
        active: 0,
        limit: this.options.maxConcurrency,
        waiting: [],
        room: [],
        serviceMs: 0,
        silentSince: this.now(),
      };
      this.lanes.set(endpoint, lane);
    }
    return lane;
  }

  /**
   * Forgets lanes idle for idleLaneMs, so a service that has seen a million origins does not keep
   * a million lanes. Runs when a lane is created, at most once per idleLaneMs / 10: no timer, and
   * a cost proportional to the lanes only when new origins keep arriving.
   */
  private sweepIdle(): void {
    const now = this.now();
    if (now - this.lastSweepAt < this.idleLaneMs / 10) return;
    this.lastSweepAt = now;
    for (const [endpoint, lane] of this.lanes) {
      if (
        lane.active === 0 &&
        lane.waiting.length === 0 &&
        lane.room.length === 0 &&
        now - lane.silentSince >= this.idleLaneMs
      ) {
        this.lanes.delete(endpoint);
      }
    }
  }

  /**
   * Whether one more queued delivery would get a slot within maxWaitMs; silence counts as service
   * time, less our own loop's delay (a completion may be waiting for the loop, not the endpoint).
   */
  private keepsUp(lane: Lane): boolean {
    const service = Math.max(lane.serviceMs, this.now() - lane.silentSince - this.ownDelayMs());
    return ((lane.waiting.length + 1) * service) / Math.floor(lane.limit) < this.options.maxWaitMs;
  }
}
