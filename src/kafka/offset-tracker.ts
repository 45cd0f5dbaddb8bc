import type { KafkaMessage } from 'kafkajs';
import { isShuttingDown } from '../shared/index.js';

/** One offset's work: done once every piece it was split into has finished. */
export class OffsetEntry {
  private remaining = 1;
  done = false;
  /** When it was taken in (epoch ms): the stall watchdog measures from here. */
  readonly addedAt = Date.now();
  /** What the work is about, for the stall log (an event id, a delivery id). */
  label = '';

  constructor(
    readonly offset: number,
    /** The record itself, so that a stalled offset can be dead-lettered. Dropped once done. */
    public message: KafkaMessage | null = null,
  ) {}

  /** Splits the work into n pieces (n = 0 finishes it at once). */
  expect(n: number): void {
    this.remaining = n;
    if (n === 0) this.finish();
  }

  finishOne(): void {
    if (--this.remaining <= 0) this.finish();
  }

  /** Pieces not finished yet. */
  get unfinished(): number {
    return this.done ? 0 : this.remaining;
  }

  /** Finished whatever is left (the record's end was made durable another way). */
  finish(): void {
    this.done = true;
    this.message = null;
  }
}

/**
 * Finishes one piece of `entry` when `work` succeeds, or when it fails and `onFailure` has made
 * the failure durable (a dead letter). A failure while the service stops leaves the offset
 * unfinished: the next owner of the partition reads it again. So does a failure with no
 * `onFailure` (the work was the dead letter itself), or an `onFailure` that fails: the stall
 * watchdog then reports it.
 */
export function finishWhenDurable(
  entry: OffsetEntry,
  work: Promise<unknown>,
  onFailure?: (err: unknown) => Promise<void>,
): void {
  work.then(
    () => entry.finishOne(),
    (err: unknown) => {
      if (isShuttingDown(err) || !onFailure) return;
      onFailure(err).then(
        () => entry.finishOne(),
        () => {},
      );
    },
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

  add(offset: number, message: KafkaMessage | null = null): OffsetEntry {
    if (offset <= this.highest) throw new Error(`offset ${offset} added after ${this.highest}`);
    const e = new OffsetEntry(offset, message);
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

  /** The oldest offset not finished, which holds the commit back; null when all are. */
  oldestUnfinished(): OffsetEntry | null {
    this.committable();
    return this.entries[this.head] ?? null;
  }

  /** Unfinished offsets, oldest first. */
  *unfinished(): Generator<OffsetEntry> {
    for (let i = this.head; i < this.entries.length; i++) if (!this.entries[i]!.done) yield this.entries[i]!;
  }

  /** Offsets taken in and not finished. */
  get pending(): number {
    let n = 0;
    for (let i = this.head; i < this.entries.length; i++) if (!this.entries[i]!.done) n++;
    return n;
  }
}
