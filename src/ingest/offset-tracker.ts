/** One offset's work: done once every piece it was split into has finished. */
export class OffsetEntry {
  private remaining = 1;
  done = false;

  constructor(readonly offset: number) {}

  /** Splits the work into n pieces (n = 0 finishes it at once). */
  expect(n: number): void {
    this.remaining = n;
    if (n === 0) this.done = true;
  }

  finishOne(): void {
    if (--this.remaining <= 0) this.done = true;
  }
}

/**
 * Finishes one piece of `entry` when `work` succeeds. Work fails only when the service is stopping:
 * the offset then stays uncommitted, and the next owner of the partition reads it again.
 */
export function finishOnSuccess(entry: OffsetEntry, work: Promise<unknown>): void {
  work.then(
    () => entry.finishOne(),
    () => {},
  );
}

/**
 * Tracks the offsets of one partition that are in progress, and yields the offset that may be
 * committed: the end of the contiguous prefix of finished offsets. Offsets must be added in order.
 */
export class PartitionTracker {
  private entries: OffsetEntry[] = [];
  private head = 0;
  /** Highest offset added; a re-fetch of anything at or below it is a duplicate. */
  highest = -1;
  /** Next offset to commit, once known. */
  private next: number | null = null;

  add(offset: number): OffsetEntry {
    if (offset <= this.highest) throw new Error(`offset ${offset} added after ${this.highest}`);
    const e = new OffsetEntry(offset);
    this.entries.push(e);
    this.highest = offset;
    return e;
  }

  /** Whether this offset was already taken in (a re-fetch after a rebalance or a seek). */
  has(offset: number): boolean {
    return offset <= this.highest;
  }

  /** The offset to commit (last finished offset of the prefix + 1), or null if nothing new finished. */
  committable(): number | null {
    while (this.head < this.entries.length && this.entries[this.head]!.done) {
      this.next = this.entries[this.head]!.offset + 1;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return this.next;
  }

  /** Offsets taken in and not finished. */
  get pending(): number {
    let n = 0;
    for (let i = this.head; i < this.entries.length; i++) if (!this.entries[i]!.done) n++;
    return n;
  }
}
