export interface EndpointGateOptions {
  /** Deliveries under way to one endpoint. Default 16. */
  maxConcurrency: number;
  /** Deliveries waiting for one endpoint; more are refused. Default 256. */
  maxQueue: number;
}

interface Lane {
  active: number;
  waiting: (() => void)[];
}

/**
 * Isolation between endpoints: each one (an origin) gets at most `maxConcurrency` deliveries at
 * once and a queue of `maxQueue`. A delivery that finds both full is refused at once, so a slow
 * or hanging endpoint can hold only its own share and never the partitions' progress.
 */
export class EndpointGate {
  private readonly lanes = new Map<string, Lane>();

  constructor(private readonly o: EndpointGateOptions) {}

  /** Resolves true once a slot is held (release it!), or false at once when the endpoint is saturated. */
  async enter(endpoint: string): Promise<boolean> {
    let lane = this.lanes.get(endpoint);
    if (!lane) {
      lane = { active: 0, waiting: [] };
      this.lanes.set(endpoint, lane);
    }
    if (lane.active < this.o.maxConcurrency) {
      lane.active++;
      return true;
    }
    if (lane.waiting.length >= this.o.maxQueue) return false;
    const l = lane;
    await new Promise<void>((resolve) => l.waiting.push(resolve));
    return true; // the slot was handed over by release()
  }

  release(endpoint: string): void {
    const lane = this.lanes.get(endpoint);
    if (!lane) return;
    const next = lane.waiting.shift();
    if (next) {
      next(); // hand the slot over; active stays the same
      return;
    }
    lane.active--;
    if (lane.active === 0) this.lanes.delete(endpoint);
  }

  /** Deliveries under way and waiting, per endpoint (for tests and debugging). */
  load(endpoint: string): { active: number; waiting: number } {
    const lane = this.lanes.get(endpoint);
    return { active: lane?.active ?? 0, waiting: lane?.waiting.length ?? 0 };
  }
}
