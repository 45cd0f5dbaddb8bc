export interface EndpointGateOptions {
  /** Deliveries under way to one endpoint. Default 16. */
  maxConcurrency: number;
  /** Deliveries queued for one endpoint before it must prove it keeps up. Default 256. */
  maxQueue: number;
  /** Longest expected wait for a slot past a full queue; beyond it, deliveries are refused. Default 5000 ms. */
  maxWaitMs: number;
  /** An idle endpoint's lane (and the service time it learned) is forgotten after this long. Default 600000 ms. */
  idleLaneMs?: number;
  /** Clock, for tests. Default Date.now. */
  now?: () => number;
}

export type Admission = 'entered' | 'saturated';

interface Lane {
  active: number;
  /** Queued deliveries, each waiting for a slot. */
  waiting: (() => void)[];
  /** Deliveries waiting for room in a full queue. */
  room: (() => void)[];
  /** Moving average of how long a delivery holds a slot. */
  serviceMs: number;
  lastProgressAt: number;
}

const EWMA = 0.2;

/**
 * Isolation between endpoints: each one (an origin) gets at most `maxConcurrency` deliveries at
 * once and a queue of `maxQueue`. Past a full queue, a delivery waits for room only while the
 * endpoint keeps up (expected wait below `maxWaitMs`: a burst to a fast endpoint is delivered,
 * not deferred); otherwise it is refused and takes the retry path. A hanging endpoint stops
 * making progress, its expected wait grows with the silence, and it is cut off within about
 * `maxWaitMs`: it can hold only its own share of the global in-flight bound.
 */
export class EndpointGate {
  private readonly lanes = new Map<string, Lane>();
  private readonly now: () => number;
  private readonly idleLaneMs: number;
  private lastSweepAt: number;

  constructor(private readonly o: EndpointGateOptions) {
    this.now = o.now ?? Date.now;
    this.idleLaneMs = o.idleLaneMs ?? 600_000;
    this.lastSweepAt = this.now();
  }

  /**
   * 'entered' when a slot is held now (release it!); 'saturated' when the endpoint does not keep
   * up; otherwise a promise of either (queued, or waiting for room in the queue).
   */
  enter(endpoint: string): Admission | Promise<Admission> {
    const lane = this.lane(endpoint);
    if (lane.active < this.o.maxConcurrency) {
      lane.active++;
      return 'entered';
    }
    if (lane.waiting.length < this.o.maxQueue) return this.queue(lane);
    // Past a full queue only an endpoint that has shown it completes, and keeps up, is waited for.
    if (lane.serviceMs === 0 || this.expectedWaitMs(lane) >= this.o.maxWaitMs) return 'saturated';
    return new Promise<Admission>((resolve) => {
      const onRoom = () => {
        clearTimeout(timer);
        resolve(this.queue(lane));
      };
      // Waiting for room is bounded too: an endpoint that stalls meanwhile lets its waiters go.
      const timer = setTimeout(() => {
        lane.room.splice(lane.room.indexOf(onRoom), 1);
        resolve('saturated');
      }, this.o.maxWaitMs);
      lane.room.push(onRoom);
    });
  }

  /** Frees a slot; `heldMs` is how long the delivery held it. */
  release(endpoint: string, heldMs: number): void {
    const lane = this.lanes.get(endpoint);
    if (!lane) return;
    lane.serviceMs = lane.serviceMs === 0 ? heldMs : lane.serviceMs * (1 - EWMA) + heldMs * EWMA;
    lane.lastProgressAt = this.now();
    const next = lane.waiting.shift();
    if (next) {
      next(); // hand the slot over; active stays the same
      lane.room.shift()?.(); // and make room in the queue
      return;
    }
    lane.active--; // the lane stays, with its service time, until it has been idle for idleLaneMs
  }

  /** Endpoints with a lane (for tests and debugging). */
  get laneCount(): number {
    return this.lanes.size;
  }

  /** Deliveries under way and queued, per endpoint (for tests and debugging). */
  load(endpoint: string): { active: number; waiting: number } {
    const lane = this.lanes.get(endpoint);
    return { active: lane?.active ?? 0, waiting: (lane?.waiting.length ?? 0) + (lane?.room.length ?? 0) };
  }

  private lane(endpoint: string): Lane {
    let lane = this.lanes.get(endpoint);
    if (!lane) {
      this.sweepIdle();
      lane = { active: 0, waiting: [], room: [], serviceMs: 0, lastProgressAt: this.now() };
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
      if (lane.active === 0 && lane.waiting.length === 0 && lane.room.length === 0 && now - lane.lastProgressAt >= this.idleLaneMs) {
        this.lanes.delete(endpoint);
      }
    }
  }

  private queue(lane: Lane): Promise<Admission> {
    return new Promise<Admission>((resolve) => lane.waiting.push(() => resolve('entered')));
  }

  /** How long one more delivery would wait: silence since the last completion counts as service time. */
  private expectedWaitMs(lane: Lane): number {
    const service = Math.max(lane.serviceMs, this.now() - lane.lastProgressAt);
    return ((lane.waiting.length + lane.room.length + 1) * service) / this.o.maxConcurrency;
  }
}
