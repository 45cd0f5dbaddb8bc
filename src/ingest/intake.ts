import type { KafkaMessage } from 'kafkajs';
import {
  type BatchContext,
  type BatchHandler,
  type DeadLetters,
  finishWhenDurable,
  type OffsetEntry,
  type RecordOrigin,
} from '../kafka/index.js';
import type { Semaphore } from '../shared/index.js';

export interface IntakeDeps {
  /** Bounds deliveries in flight across all partitions and both intakes. */
  limiter: Semaphore;
  /** Where a stalled record goes (the events DLQ or the deliveries DLQ). */
  deadLetters: DeadLetters;
}

/**
 * What the two intakes (the events pipeline and the retry handler) do alike with a batch: take
 * each record in once, track its offset, start its deliveries within the in-flight bound, and
 * finish the offset only once its end is durable. Each intake decides what a record becomes, in
 * its handleBatch.
 */
export abstract class Intake<Deps extends IntakeDeps> implements BatchHandler {
  private draining = false;

  constructor(protected readonly deps: Deps) {}

  abstract handleBatch(batch: BatchContext): Promise<void>;

  /**
   * Stops taking records in: the rest of a batch already fetched is left uncommitted for the next
   * owner of the partition. Work already taken in goes on (an event already started still gets
   * all its deliveries: no partial event, hence no duplicates when the next owner reads it).
   */
  drain(): void {
    this.draining = true;
  }

  /**
   * The messages of the batch not taken in before. One already taken in (fetched again after a
   * rebalance or a seek) is resolved and left to the work already under way.
   */
  protected fresh({ messages, tracker, resolveOffset }: BatchContext): KafkaMessage[] {
    const fresh: KafkaMessage[] = [];
    for (const m of messages) {
      if (tracker.has(Number(m.offset))) resolveOffset(m.offset);
      else fresh.push(m);
    }
    return fresh;
  }

  /**
   * Takes one message in: its offset is tracked and resolved. Null while draining, and once a
   * rebalance has begun: a batch still running when another heard of it (partitions are consumed
   * concurrently) must not add work that the drain before the rebalance would not wait for.
   */
  protected take({ tracker, resolveOffset, takingIn }: BatchContext, m: KafkaMessage): OffsetEntry | null {
    if (this.draining || !takingIn()) return null;
    const entry = tracker.add(Number(m.offset), m);
    resolveOffset(m.offset);
    return entry;
  }

  /**
   * Starts one piece of `entry`'s work once a slot of the in-flight bound is free (heartbeating
   * while it waits); the piece finishes when the work succeeds, or when `onFailure` has made its
   * failure durable (see finishWhenDurable).
   */
  protected async start(
    entry: OffsetEntry,
    { heartbeat }: BatchContext,
    work: () => Promise<void>,
    onFailure: (err: unknown) => Promise<void>,
  ): Promise<void> {
    const { limiter } = this.deps;
    if (!limiter.tryAcquire()) await limiter.acquire(heartbeat);
    finishWhenDurable(
      entry,
      work().finally(() => limiter.release()),
      onFailure,
    );
  }

  /** A stalled record goes to its DLQ as it is; re-driving it from there takes it in again. */
  deadLetterStalled(m: KafkaMessage, from: RecordOrigin, detail: string): Promise<void> {
    return this.deps.deadLetters.write(m, from, 'STALLED', detail);
  }
}
