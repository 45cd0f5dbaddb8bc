import type { EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { PartitionTracker } from '../ingest/offset-tracker.js';
import type { Metrics } from '../metrics/metrics.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { SupervisedConsumer } from './supervised-consumer.js';

/** What a handler gets for one fetched batch. */
export interface BatchContext {
  topic: string;
  partition: number;
  messages: readonly KafkaMessage[];
  /** Offsets of this partition under way; add each message taken in, finish it when its work is durable. */
  tracker: PartitionTracker;
  /** Marks a message as taken in, so it is not fetched again while this replica owns the partition. */
  resolveOffset: (offset: string) => void;
  /** Keeps the group membership alive during long waits; never throws. */
  heartbeat: () => Promise<void>;
  /** Stops fetching this partition for a while; unresolved messages are fetched again after. */
  pauseFor: (ms: number) => void;
}

export interface BatchHandler {
  handleBatch(ctx: BatchContext): Promise<void>;
  /** Take no more messages in (shutdown); work already taken in goes on. */
  drain(): void;
}

export interface TrackedConsumerOptions {
  kafka: Kafka;
  /** Which consumer this is (logs, metrics). */
  name: 'events' | 'retries';
  topics: string[];
  groupId: string;
  handler: BatchHandler;
  metrics: Metrics;
  log: Logger;
  /** Partitions handled at once. Default 4. */
  partitionsConsumedConcurrently: number;
  /** How often finished offsets are committed. Default 200 ms. */
  commitIntervalMs: number;
  /** Group session timeout: how long a dead replica keeps its partitions. Default 10000 ms. */
  sessionTimeoutMs: number;
  /** Report consumer lag per partition (for the events topic). Default false. */
  reportLag?: boolean;
}

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

interface TrackedPartition {
  topic: string;
  partition: number;
  tracker: PartitionTracker;
  /** Last offset committed by this replica. */
  committed: number | null;
}

/**
 * A consumer group member with at-least-once commits: per partition it commits only the
 * contiguous prefix of offsets whose work the handler has finished.
 */
export class TrackedConsumer {
  private readonly supervised: SupervisedConsumer;
  private trackers = new Map<string, TrackedPartition>();
  private assigned = new Set<string>();
  private joined = false;
  private timer: NodeJS.Timeout | null = null;
  private committing: Promise<void> | null = null;
  private resumeTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly o: TrackedConsumerOptions) {
    const { groupId, topics } = o;
    this.supervised = new SupervisedConsumer({
      kafka: o.kafka,
      name: o.name,
      metrics: o.metrics,
      log: o.log,
      config: {
        groupId,
        sessionTimeout: o.sessionTimeoutMs,
        heartbeatInterval: Math.max(500, Math.floor(o.sessionTimeoutMs / 10)),
        maxWaitTimeInMs: 100,
        allowAutoTopicCreation: false,
      },
      setup: async (consumer) => {
        consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => this.onJoin(payload.memberAssignment));
        consumer.on(consumer.events.CRASH, () => {
          this.joined = false;
        });
        consumer.on(consumer.events.DISCONNECT, () => {
          this.joined = false;
        });
        for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: o.partitionsConsumedConcurrently,
          eachBatch: (p) => this.onBatch(p),
        });
      },
    });
  }

  async start(): Promise<void> {
    await this.supervised.start();
    this.timer = setInterval(() => void this.commit(), this.o.commitIntervalMs);
    this.timer.unref();
  }

  private onJoin(memberAssignment: Record<string, number[]>): void {
    const assigned = new Set<string>();
    for (const [topic, partitions] of Object.entries(memberAssignment)) {
      for (const p of partitions) assigned.add(key(topic, p));
    }
    // Partitions kept retain their trackers, so work under way is not started twice when the
    // consumer fetches again from the last commit; the others are let go.
    for (const [k, t] of this.trackers) {
      if (!assigned.has(k)) {
        this.trackers.delete(k);
        if (this.o.reportLag) this.o.metrics.consumerLag.remove({ partition: String(t.partition) });
      }
    }
    this.assigned = assigned;
    this.joined = true;
    this.o.log.info('joined consumer group', { groupId: this.o.groupId, assignment: memberAssignment });
  }

  isJoined(): boolean {
    return this.joined;
  }

  /** Offsets taken in whose work has not finished. */
  pending(): number {
    let n = 0;
    for (const t of this.trackers.values()) n += t.tracker.pending;
    return n;
  }

  /** Stops fetching and taking messages in; work under way goes on. */
  pause(): void {
    this.o.handler.drain();
    this.supervised.current?.pause(this.o.topics.map((topic) => ({ topic })));
  }

  /** Commits what is finished, then leaves the group. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const t of this.resumeTimers) clearTimeout(t);
    await this.commit();
    await this.supervised.stop();
    this.joined = false;
  }

  private async onBatch(p: EachBatchPayload): Promise<void> {
    const { batch } = p;
    const k = key(batch.topic, batch.partition);
    let entry = this.trackers.get(k);
    if (!entry) {
      entry = { topic: batch.topic, partition: batch.partition, tracker: new PartitionTracker(), committed: null };
      this.trackers.set(k, entry);
    }
    await this.o.handler.handleBatch({
      topic: batch.topic,
      partition: batch.partition,
      messages: batch.messages,
      tracker: entry.tracker,
      resolveOffset: p.resolveOffset,
      // Best effort. A refused heartbeat (broker down, rebalance under way) must not abort a
      // batch whose offsets are already taken in: they would never finish, and never be read again.
      heartbeat: () => p.heartbeat().catch(() => {}),
      pauseFor: (ms) => this.pauseFor(batch.topic, batch.partition, ms),
    });
    if (this.o.reportLag) this.o.metrics.consumerLag.set({ partition: String(batch.partition) }, Number(batch.offsetLag()));
  }

  private pauseFor(topic: string, partition: number, ms: number): void {
    const tp = [{ topic, partitions: [partition] }];
    this.supervised.current?.pause(tp);
    const timer = setTimeout(() => {
      this.resumeTimers.delete(timer);
      this.supervised.current?.resume(tp);
    }, ms);
    this.resumeTimers.add(timer);
  }

  /** Commits each assigned partition's finished prefix; one commit at a time. */
  async commit(): Promise<void> {
    if (this.committing) return this.committing;
    this.committing = (async () => {
      const offsets: { topic: string; partition: number; offset: string }[] = [];
      const committed: [TrackedPartition, number][] = [];
      for (const [k, t] of this.trackers) {
        const next = t.tracker.committable();
        if (next !== null && this.assigned.has(k) && next !== t.committed) {
          offsets.push({ topic: t.topic, partition: t.partition, offset: String(next) });
          committed.push([t, next]);
        }
      }
      const consumer = this.supervised.current;
      if (offsets.length === 0 || !consumer) return;
      try {
        await consumer.commitOffsets(offsets);
        for (const [t, next] of committed) t.committed = next;
      } catch (err) {
        // Typically a rebalance under way; the next tick tries again with the new assignment.
        this.o.log.warn('offset commit failed; will retry', { groupId: this.o.groupId, error: errorMessage(err) });
      }
    })().finally(() => {
      this.committing = null;
    });
    return this.committing;
  }
}
