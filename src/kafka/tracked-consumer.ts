import type { Admin, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { Metrics } from '../metrics/index.js';
import { drainUntil, errorMessage, type Logger } from '../shared/index.js';
import type { RecordOrigin } from './dead-letters.js';
import { LagReporter } from './lag-reporter.js';
import { PartitionTracker } from './offset-tracker.js';
import { dropRejoinHold, holdNextRejoin, installRejoinHold } from './rejoin-hold.js';
import { StallWatchdog } from './stall-watchdog.js';
import { SupervisedConsumer } from './supervised-consumer.js';

/** How often a consumer heartbeats (well under KAFKA_SESSION_TIMEOUT_MS, whose minimum is 6 s). */
const HEARTBEAT_INTERVAL_MS = 300;

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
  /**
   * False once a rebalance has begun (heard by this batch or another): messages not taken in by
   * then are left, unresolved, to whoever owns the partition next.
   */
  takingIn: () => boolean;
}

export interface BatchHandler {
  handleBatch(ctx: BatchContext): Promise<void>;
  /** Take no more messages in (shutdown); work already taken in goes on. */
  drain(): void;
  /** Makes a stalled record's end durable (a dead letter with reason STALLED). */
  deadLetterStalled(m: KafkaMessage, from: RecordOrigin, detail: string): Promise<void>;
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
  /** Partitions handled at once. */
  partitionsConsumedConcurrently: number;
  /** How often finished offsets are committed. */
  commitIntervalMs: number;
  /** Group session timeout: how long a dead replica keeps its partitions. */
  sessionTimeoutMs: number;
  /** Reads end and committed offsets for the lag metric. */
  admin: Admin;
  /** STALL_TIMEOUT_MS: how long the oldest unfinished offset may wait before it is dead-lettered. */
  stallTimeoutMs: number;
  /** SHUTDOWN_GRACE_MS: how long work under way may take to finish before a rebalance goes on. */
  rebalanceDrainMs: number;
  /**
   * Whether Redis and Kafka answer. Time spent waiting for a dependency that is down does not
   * count toward a stall: that work resumes by itself, and dead-lettering it would be wrong.
   */
  dependenciesUp: () => boolean;
}

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** The coordinator's answer while a rebalance waits for its members to join again. */
const isRebalanceStarting = (err: unknown) => (err as { type?: string } | null)?.type === 'REBALANCE_IN_PROGRESS';

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
  private readonly watchdog: StallWatchdog;
  private readonly lag: LagReporter;
  /** A rebalance has started: no message is taken in until the group is joined again. */
  private rebalancing = false;
  /** The member id a rejoin hold is registered for, until the member joins again or stops. */
  private heldMember: string | null = null;

  constructor(private readonly options: TrackedConsumerOptions) {
    const { groupId, topics } = options;
    installRejoinHold();
    this.watchdog = new StallWatchdog({
      ...options,
      owned: () => [...this.trackers].filter(([k]) => this.assigned.has(k)).map(([, t]) => t),
      deadLetterStalled: (m, from, detail) => options.handler.deadLetterStalled(m, from, detail),
    });
    this.lag = new LagReporter({
      ...options,
      owns: (topic, partition) => this.assigned.has(key(topic, partition)),
    });
    this.supervised = new SupervisedConsumer({
      kafka: options.kafka,
      name: options.name,
      metrics: options.metrics,
      log: options.log,
      config: {
        groupId,
        sessionTimeout: options.sessionTimeoutMs,
        // A member learns that a rebalance has begun from a heartbeat's answer, and the group waits
        // for every member to rejoin: events wait about one heartbeat interval whenever a replica
        // comes or goes. A third of a second (a heartbeat is a few bytes) keeps that wait short.
        heartbeatInterval: HEARTBEAT_INTERVAL_MS,
        // How long the group waits for its members to rejoin: longer than a drain may take.
        rebalanceTimeout: Math.max(60_000, options.rebalanceDrainMs + 10_000),
        maxWaitTimeInMs: 100,
        allowAutoTopicCreation: false,
      },
      setup: async (consumer) => {
        consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
          this.dropHold();
          this.onJoin(payload.memberAssignment);
        });
        // A rebalance kafkajs heard between batches (its own heartbeat after an empty fetch): it
        // rejoins only once the work under way is finished and committed (see rejoin-hold.ts).
        consumer.on(consumer.events.REBALANCING, ({ payload }) => {
          if (this.rebalancing) return; // the batch that heard it has drained already
          this.dropHold();
          this.heldMember = payload.memberId;
          holdNextRejoin(payload.memberId, (heartbeat) => this.drainForRebalance(heartbeat));
        });
        consumer.on(consumer.events.CRASH, () => {
          this.dropHold();
          this.joined = false;
        });
        consumer.on(consumer.events.DISCONNECT, () => {
          this.joined = false;
        });
        for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
          eachBatch: (p) => this.onBatch(p),
        });
      },
    });
  }

  async start(): Promise<void> {
    await this.supervised.start();
    this.timer = setInterval(() => void this.commit(), this.options.commitIntervalMs);
    this.timer.unref();
    this.watchdog.start();
    this.lag.start();
  }

  private onJoin(memberAssignment: Record<string, number[]>): void {
    const assigned = new Set<string>();
    for (const [topic, partitions] of Object.entries(memberAssignment)) {
      for (const p of partitions) assigned.add(key(topic, p));
    }
    // Partitions kept retain their trackers, so work under way is not started twice when the
    // consumer fetches again from the last commit; the others are let go.
    for (const k of this.trackers.keys()) {
      if (!assigned.has(k)) this.trackers.delete(k);
    }
    for (const k of this.assigned) {
      if (!assigned.has(k)) {
        const [topic, partition] = k.split('\u0000') as [string, string];
        this.options.metrics.consumerLag.remove({ topic, partition });
        this.options.metrics.oldestUnfinished.remove({ topic, partition });
      }
    }
    this.assigned = assigned;
    this.joined = true;
    this.rebalancing = false;
    this.options.log.info('joined consumer group', { groupId: this.options.groupId, assignment: memberAssignment });
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
    this.options.handler.drain();
    this.supervised.current?.pause(this.options.topics.map((topic) => ({ topic })));
  }

  /** Commits what is finished, then leaves the group. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.watchdog.stop();
    this.lag.stop();
    for (const t of this.resumeTimers) clearTimeout(t);
    await this.commit();
    await this.supervised.stop();
    this.dropHold();
    this.joined = false;
  }

  private dropHold(): void {
    if (this.heldMember !== null) dropRejoinHold(this.heldMember);
    this.heldMember = null;
  }

  private async onBatch(p: EachBatchPayload): Promise<void> {
    // Taken in by whoever owns the partition once the rebalance is over (unresolved, so fetched again).
    if (this.rebalancing) return;
    const { batch } = p;
    const k = key(batch.topic, batch.partition);
    let entry = this.trackers.get(k);
    if (!entry) {
      entry = { topic: batch.topic, partition: batch.partition, tracker: new PartitionTracker(), committed: null };
      this.trackers.set(k, entry);
    }
    await this.options.handler.handleBatch({
      topic: batch.topic,
      partition: batch.partition,
      messages: batch.messages,
      tracker: entry.tracker,
      resolveOffset: p.resolveOffset,
      // Best effort. A refused heartbeat (broker down, rebalance under way) must not abort a
      // batch whose offsets are already taken in: they would never finish, and never be read again.
      heartbeat: () => p.heartbeat().catch(() => {}),
      pauseFor: (ms) => this.pauseFor(batch.topic, batch.partition, ms),
      takingIn: () => !this.rebalancing,
    });
    await this.finishBeforeRebalance(p);
  }

  /**
   * Why a rebalance waits for the work under way. Work taken in here outlives the batch that
   * brought it (deliveries go on after eachBatch returns), and an offset is committed only once its
   * work is durable. When partitions move (a replica added or stopped), what was under way but
   * not yet committed is fetched again by the new owner and delivered twice. kafkajs rejoins the
   * group only after every eachBatch of the current fetch has returned, and the coordinator accepts
   * commits from the current generation until all members have joined again. So the batch whose
   * heartbeat first hears "rebalance in progress" holds on until the work under way is finished
   * and committed (drainForRebalance), and only then lets kafkajs rejoin. A rebalance kafkajs hears
   * by itself between batches is held the same way, before its JoinGroup (the REBALANCING
   * listener). Partitions move with nothing of theirs in flight.
   */
  private async finishBeforeRebalance(p: EachBatchPayload): Promise<void> {
    if (this.rebalancing) return;
    const heard = await p.heartbeat().then(
      () => null,
      (err: unknown) => err,
    );
    if (!isRebalanceStarting(heard)) return;
    await this.drainForRebalance(() => p.heartbeat().catch(() => {}));
    // kafkajs's own error: it rejoins at once, without logging it as a failure of eachBatch.
    throw heard;
  }

  /**
   * No message is taken in any more; the work under way finishes (at most SHUTDOWN_GRACE_MS,
   * heartbeating so the session lasts), and what has finished is committed.
   */
  private async drainForRebalance(heartbeat: () => Promise<void>): Promise<void> {
    this.rebalancing = true;
    const started = Date.now();
    let beat = started;
    await drainUntil(
      () => this.pending(),
      started + this.options.rebalanceDrainMs,
      async () => {
        if (Date.now() - beat < HEARTBEAT_INTERVAL_MS) return;
        beat = Date.now();
        await heartbeat();
      },
    );
    await this.commit();
    this.options.log.info('rebalance: work under way finished and committed before the partitions move', {
      groupId: this.options.groupId,
      waitedMs: Date.now() - started,
      unfinished: this.pending(),
    });
  }

  /** Partitions whose oldest unfinished offset has waited past STALL_TIMEOUT_MS (readiness names them). */
  stalledPartitions(): string[] {
    return this.watchdog.stalledPartitions();
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
    // A commit under way read the offsets when it began, perhaps before the caller's work had
    // finished (the drain before a rebalance waits for that work, then commits): wait for it, then
    // commit what has finished since.
    while (this.committing) await this.committing;
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
        this.options.log.warn('offset commit failed; will retry', {
          groupId: this.options.groupId,
          error: errorMessage(err),
        });
      }
    })().finally(() => {
      this.committing = null;
    });
    return this.committing;
  }
}
