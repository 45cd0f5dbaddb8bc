import type net from 'node:net';

/**
 * A budget for idle connections across every origin. An origin with no request under way holds
 * only idle connections; past `max` idle connections in all, those of the origin used least
 * recently are closed first. Keep-alive stays cheap for the origins that see traffic often, and a
 * dispatcher with 100,000 sparse endpoints does not keep a socket (a file descriptor and its
 * buffers) for each.
 *
 * HttpClient says when a request to an origin starts and ends (`busy`, `done`); the connector
 * reports every socket it opens (`opened`).
 */
export class IdleConnections {
  private readonly sockets = new Map<string, Set<net.Socket>>();
  private readonly inFlight = new Map<string, number>();
  /** Origins with nothing under way, least recently used first. */
  private readonly idle = new Set<string>();
  private idleCount = 0;
  /** Connections closed to keep within the budget. */
  closed = 0;

  constructor(
    private readonly max: number,
    /** Told how many connections each enforcement closed. */
    private readonly onClosed: (count: number) => void = () => {},
  ) {}

  /** Open connections, and how many of them are idle. */
  counts(): { open: number; idle: number } {
    let open = 0;
    for (const set of this.sockets.values()) open += set.size;
    return { open, idle: this.idleCount };
  }

  opened(origin: string, socket: net.Socket): void {
    const set = this.sockets.get(origin) ?? new Set<net.Socket>();
    this.sockets.set(origin, set);
    set.add(socket);
    if (this.idle.has(origin)) this.idleCount++;
    socket.once('close', () => {
      if (!set.delete(socket)) return;
      if (this.idle.has(origin)) this.idleCount--;
      if (set.size === 0 && this.sockets.get(origin) === set) this.sockets.delete(origin);
    });
    this.enforce();
  }

  busy(origin: string): void {
    this.inFlight.set(origin, (this.inFlight.get(origin) ?? 0) + 1);
    if (this.idle.delete(origin)) this.idleCount -= this.sockets.get(origin)?.size ?? 0;
  }

  done(origin: string): void {
    const left = (this.inFlight.get(origin) ?? 1) - 1;
    if (left > 0) {
      this.inFlight.set(origin, left);
      return;
    }
    this.inFlight.delete(origin);
    this.idle.add(origin);
    this.idleCount += this.sockets.get(origin)?.size ?? 0;
    this.enforce();
  }

  private enforce(): void {
    for (const origin of this.idle) {
      if (this.idleCount <= this.max) return;
      const set = this.sockets.get(origin);
      this.idle.delete(origin);
      if (!set) continue;
      // Counted out before they close, so that a close event does not count them twice.
      this.sockets.delete(origin);
      this.idleCount -= set.size;
      this.closed += set.size;
      this.onClosed(set.size);
      const sockets = [...set];
      set.clear();
      for (const socket of sockets) socket.destroy();
    }
  }
}
