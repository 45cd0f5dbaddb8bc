import { BlueWebhooksError } from './errors.js';

/** A counting semaphore: bounds work in flight and makes producers of work wait. */
export class Semaphore {
  private used = 0;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(readonly capacity: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes a slot if one is free, without waiting. */
  tryAcquire(): boolean {
    if (this.closed || this.used >= this.capacity) return false;
    this.used++;
    return true;
  }

  /**
   * Takes a slot, waiting while none is free. `whileWaiting` runs every `intervalMs` of waiting
   * (the consumer heartbeats there). Throws SHUTTING_DOWN once closed.
   */
  async acquire(whileWaiting?: () => Promise<void>, intervalMs = 1000): Promise<void> {
    while (this.used >= this.capacity) {
      if (this.closed) throw new BlueWebhooksError('SHUTTING_DOWN', 'no new work while stopping');
      let timer: NodeJS.Timeout | undefined;
      const freed = await new Promise<boolean>((resolve) => {
        this.waiters.push(() => resolve(true));
        timer = setTimeout(() => resolve(false), intervalMs);
      });
      clearTimeout(timer);
      if (!freed && whileWaiting) await whileWaiting();
    }
    if (this.closed) throw new BlueWebhooksError('SHUTTING_DOWN', 'no new work while stopping');
    this.used++;
  }

  release(): void {
    this.used--;
    this.waiters.shift()?.();
  }

  /** Makes waiting and future acquires fail; work already holding a slot goes on. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }
}
