import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { Metrics } from '../metrics/metrics.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { PartitionTracker } from './offset-tracker.js';
import type { EventPipeline } from './pipeline.js';

export interface EventConsumerOptions {
  kafka: Kafka;
  topic: string;
  groupId: string;
  pipeline: EventPipeline;
  metrics: Metrics;
  log: Logger;
  /** Event partitions handled at once. Default 4. */
  partitionsConsumedConcurrently: number;
  /** How often finished offsets are committed. Default 200 ms. */
  commitIntervalMs: number;
  /** Group session timeout: how long a dead replica keeps its partitions. Default 10000 ms. */
  sessionTimeoutMs: number;
}

/**
 * The events consumer group: feeds batches to the pipeline and commits, per partition, only the
 * contiguous prefix of offsets whose deliveries all have recorded outcomes (at-least-once).
 */
export class EventConsumer {
  private consumer: Consumer | null = null;
  private trackers = new Map<number, PartitionTracker>();
  private committed = new Map<number, number>();
  private assigned = new Set<number>();
  private joined = false;
  private timer: NodeJS.Timeout | null = null;
  private committing: Promise<void> | null = null;

  constructor(private readonly o: EventConsumerOptions) {}

  async start(): Promise<void> {
    const { kafka, topic, groupId } = this.o;
    const consumer = kafka.consumer({
      groupId,
      sessionTimeout: this.o.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(this.o.sessionTimeoutMs / 10)),
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5000, restartOnFailure: async () => true },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const partitions = new Set<number>(payload.memberAssignment[topic] ?? []);
      // Partitions we keep retain their trackers, so work already under way is not started twice
      // when the consumer re-fetches from the last commit; the others are let go.
      for (const p of this.trackers.keys()) {
        if (!partitions.has(p)) {
          this.trackers.delete(p);
          this.committed.delete(p);
          this.o.metrics.consumerLag.remove({ partition: String(p) });
        }
      }
      this.assigned = partitions;
      this.joined = true;
      this.o.log.info('joined the events consumer group', { partitions: [...partitions].sort((a, b) => a - b) });
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      this.joined = false;
      this.o.log.error('events consumer crashed; kafkajs restarts it', { error: errorMessage(payload.error), restart: payload.restart });
    });
    consumer.on(consumer.events.DISCONNECT, () => {
      this.joined = false;
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: this.o.partitionsConsumedConcurrently,
      eachBatch: (p) => this.onBatch(p),
    });
    this.timer = setInterval(() => void this.commit(), this.o.commitIntervalMs);
    this.timer.unref();
  }

  isJoined(): boolean {
    return this.joined;
  }

  /** Offsets taken in whose work has not finished. */
  pending(): number {
    let n = 0;
    for (const t of this.trackers.values()) n += t.pending;
    return n;
  }

  /** Stops fetching and taking events in; work under way goes on. */
  pause(): void {
    this.o.pipeline.drain();
    this.consumer?.pause([{ topic: this.o.topic }]);
  }

  /** Commits what is finished, then leaves the group. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.commit();
    await this.consumer?.disconnect();
    this.joined = false;
  }

  private async onBatch({ batch, heartbeat }: EachBatchPayload): Promise<void> {
    const tracker = this.trackers.get(batch.partition) ?? new PartitionTracker();
    this.trackers.set(batch.partition, tracker);
    await this.o.pipeline.handleBatch({ partition: batch.partition, messages: batch.messages, tracker, heartbeat });
    this.o.metrics.consumerLag.set({ partition: String(batch.partition) }, Number(batch.offsetLag()));
  }

  /** Commits each assigned partition's finished prefix; one commit at a time. */
  async commit(): Promise<void> {
    if (this.committing) return this.committing;
    this.committing = (async () => {
      const offsets: { topic: string; partition: number; offset: string }[] = [];
      for (const [partition, tracker] of this.trackers) {
        const next = tracker.committable();
        if (next !== null && this.assigned.has(partition) && next !== this.committed.get(partition)) {
          offsets.push({ topic: this.o.topic, partition, offset: String(next) });
        }
      }
      if (offsets.length === 0 || !this.consumer) return;
      try {
        await this.consumer.commitOffsets(offsets);
        for (const o of offsets) this.committed.set(o.partition, Number(o.offset));
      } catch (err) {
        // Typically a rebalance under way; the next tick tries again with the new assignment.
        this.o.log.warn('offset commit failed; will retry', { error: errorMessage(err) });
      }
    })().finally(() => {
      this.committing = null;
    });
    return this.committing;
  }
}
