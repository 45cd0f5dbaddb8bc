import { randomUUID } from 'node:crypto';
import type { Admin, EachBatchPayload, Kafka } from 'kafkajs';
import type { Registry } from '../codec/index.js';
import { SupervisedConsumer } from '../kafka/index.js';
import type { Metrics } from '../metrics/index.js';
import { BlueWebhooksError, errorMessage, type Logger, type UntilDone } from '../shared/index.js';
import { SubscriptionApplier } from './applier.js';
import type { SubscriptionStore } from './store.js';
import type { SubscriptionTable } from './table.js';

export interface SubscriptionSyncerOptions {
  kafka: Kafka;
  admin: Admin;
  topic: string;
  /** This replica's own consumer group for the table topic (every replica reads every partition). */
  groupId: string;
  registry: Registry;
  store: SubscriptionStore;
  table: SubscriptionTable;
  metrics: Metrics;
  log: Logger;
  /** Longest wait in `ensureFresh` before it gives up with a retriable error. */
  freshnessTimeoutMs: number;
  /** How often the table's presence in Redis is checked (a flush triggers a rebuild). Default 1000 ms. */
  checkIntervalMs?: number;
  untilDone: UntilDone;
}

/** How often the topic's end offsets are read for the lag gauges while nothing else reads them. */
const LAG_INTERVAL_MS = 5000;
/** A table not complete for this long is logged (then once per interval): no event is matched meanwhile. */
const INCOMPLETE_LOG_MS = 60_000;

interface Probe {
  startedAt: number;
  done: Promise<void>;
}

/**
 * Keeps the Redis table in step with the compacted subscriptions topic, invalidates the in-process
 * cache on every change, and answers "is the table current as of time T?" (`ensureFresh`).
 *
 * Every replica reads the whole topic and applies every record; the store's compare-and-set makes
 * that idempotent, so the table survives any replica's death and a Redis flush is repaired by
 * re-reading the topic from its beginning.
 */
export class SubscriptionSyncer {
  private consumer: SupervisedConsumer | null = null;
  /** Next offset to apply, per partition, for the current build epoch. */
  private applied = new Map<number, number>();
  private waiters: (() => void)[] = [];
  private readonly applier: SubscriptionApplier;
  private confirmedAt = 0;
  private probe: Probe | null = null;
  private epoch = 0;
  private buildToken = randomUUID();
  private ready = false;
  private rebuilding: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** When the current build started, and when the lag and an incomplete table were last reported. */
  private buildStartedAt = Date.now();
  private lagReportedAt = 0;
  private incompleteLoggedAt = 0;
  /** Records behind, as last reported. */
  private lag = 0;

  constructor(private readonly options: SubscriptionSyncerOptions) {
    this.applier = new SubscriptionApplier(options);
  }

  /** Starts consuming and resolves once the table has caught up with the topic's end as of now. */
  async start(): Promise<void> {
    const { kafka, topic, groupId } = this.options;
    this.buildStartedAt = Date.now();
    this.options.metrics.subscriptionTableComplete.set(0);
    // Checks the table, reports the lag, and says so when a build takes long, from the start on.
    this.timer = setInterval(() => void this.check(), this.options.checkIntervalMs ?? 1000);
    this.timer.unref();
    await this.options.untilDone(() => this.options.store.beginBuild(this.buildToken), 'starting the table build');
    // Nothing is committed: a consumer started again (after kafkajs gave up on one) reads the topic
    // from its beginning, and applying a record twice changes nothing.
    this.consumer = new SupervisedConsumer({
      kafka,
      name: 'subscriptions',
      metrics: this.options.metrics,
      log: this.options.log,
      config: {
        groupId,
        maxWaitTimeInMs: 250,
        sessionTimeout: 10_000,
        heartbeatInterval: 1000,
        allowAutoTopicCreation: false,
      },
      setup: async (consumer) => {
        await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({ autoCommit: false, eachBatch: (p) => this.onBatch(p) });
      },
    });
    await this.consumer.start();
    await this.completeBuild();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    for (const w of this.waiters.splice(0)) w();
    await this.consumer?.stop();
  }

  /** True once the table is complete in Redis and this replica has caught up with it. */
  isReady(): boolean {
    return this.ready;
  }

  /**
   * Resolves once every subscription record written before `sinceMs` has been applied here (so a
   * webhook created before an event is never missed). Probes are shared by concurrent callers.
   */
  async ensureFresh(sinceMs: number, timeoutMs = this.options.freshnessTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.confirmedAt < sinceMs) {
      if (this.stopping) throw new BlueWebhooksError('SHUTTING_DOWN', 'subscription syncer stopped');
      // One probe at a time. If the one under way started too early, the loop starts the next when it ends.
      this.probe ??= this.startProbe();
      const probe = this.probe;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        probe.done.catch(() => {}),
        new Promise<void>((r) => {
          timer = setTimeout(r, remaining);
        }),
      ]);
      clearTimeout(timer);
    }
    if (this.confirmedAt < sinceMs) {
      throw new BlueWebhooksError('TABLE_NOT_READY', `subscription table not caught up within ${timeoutMs} ms`, {
        retriable: true,
      });
    }
  }

  /**
   * Reports the lag, says so when the table has not completed for INCOMPLETE_LOG_MS, and checks
   * that the table is still in Redis: rebuilds it from the topic when it is gone.
   */
  async check(): Promise<void> {
    if (this.stopping) return;
    const now = Date.now();
    if (now - this.lagReportedAt >= LAG_INTERVAL_MS) {
      this.lagReportedAt = now;
      await this.endOffsets().then(
        (ends) => this.reportLag(ends),
        () => {},
      );
    }
    if (
      !this.ready &&
      now - this.buildStartedAt >= INCOMPLETE_LOG_MS &&
      now - this.incompleteLoggedAt >= INCOMPLETE_LOG_MS
    ) {
      this.incompleteLoggedAt = now;
      this.options.log.error('subscription table not complete: no event is matched until it is', {
        sinceSeconds: Math.round((now - this.buildStartedAt) / 1000),
        recordsBehind: this.lag,
      });
    }
    if (!this.ready || this.rebuilding) return;
    try {
      if (await this.options.store.isMarkedReady()) {
        this.options.metrics.subscriptionsLoaded.set(await this.options.store.liveCount());
        return;
      }
    } catch (err) {
      this.options.log.warn('subscription table check failed', { error: errorMessage(err) });
      return;
    }
    this.options.log.warn('subscription table missing from Redis (flushed or restarted); rebuilding from the topic');
    this.rebuilding = this.rebuild().finally(() => {
      this.rebuilding = null;
    });
  }

  private async rebuild(): Promise<void> {
    this.ready = false;
    this.options.metrics.subscriptionTableComplete.set(0);
    await this.restartBuild();
    await this.completeBuild();
  }

  /** Forgets what this replica applied and re-reads the topic from its beginning. */
  private async restartBuild(): Promise<void> {
    this.epoch++;
    this.buildStartedAt = Date.now();
    this.applied = new Map();
    this.options.metrics.subscriptionAppliedOffset.reset();
    this.applier.reset();
    this.options.table.clear();
    this.confirmedAt = 0;
    this.buildToken = randomUUID();
    await this.options.untilDone(() => this.options.store.beginBuild(this.buildToken), 'restarting the table build');
    const partitions = await this.options.untilDone(() => this.endOffsets(), 'listing partitions');
    for (const partition of partitions.keys())
      this.consumer!.current!.seek({ topic: this.options.topic, partition, offset: '0' });
  }

  private async completeBuild(): Promise<void> {
    for (;;) {
      await this.ensureFresh(Date.now(), 3_600_000);
      if (await this.options.untilDone(() => this.options.store.markReady(this.buildToken), 'marking the table ready'))
        break;
      this.options.log.warn('Redis was flushed during the table build; building again');
      await this.restartBuild();
    }
    this.ready = true;
    this.options.metrics.subscriptionTableComplete.set(1);
    this.options.metrics.subscriptionsLoaded.set(await this.options.store.liveCount().catch(() => 0));
    this.options.log.info('subscription table ready');
  }

  private startProbe(): Probe {
    const startedAt = Date.now();
    const done = (async () => {
      const target = await this.options.untilDone(() => this.endOffsets(), 'reading subscription end offsets');
      while (this.reportLag(target) > 0) {
        if (this.stopping) throw new BlueWebhooksError('SHUTTING_DOWN', 'subscription syncer stopped');
        await new Promise<void>((r) => this.waiters.push(r));
      }
      this.confirmedAt = Math.max(this.confirmedAt, startedAt);
    })().finally(() => {
      if (this.probe?.done === done) this.probe = null;
    });
    return { startedAt, done };
  }

  /** Records of the topic up to `ends` not yet applied here; sets the lag and offset gauges. */
  private reportLag(ends: Map<number, number>): number {
    const { metrics } = this.options;
    let lag = 0;
    for (const [partition, end] of ends) {
      metrics.subscriptionEndOffset.set({ partition: String(partition) }, end);
      lag += Math.max(0, end - (this.applied.get(partition) ?? 0));
    }
    this.lag = lag;
    metrics.subscriptionSyncLag.set(lag);
    return lag;
  }

  private async endOffsets(): Promise<Map<number, number>> {
    try {
      const offsets = await this.options.admin.fetchTopicOffsets(this.options.topic);
      return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
    } catch (err) {
      throw new BlueWebhooksError(
        'KAFKA_UNAVAILABLE',
        `fetching end offsets of ${this.options.topic}: ${errorMessage(err)}`,
        {
          retriable: true,
          cause: err,
        },
      );
    }
  }

  private async onBatch({ batch, heartbeat, isStale }: EachBatchPayload): Promise<void> {
    const epoch = this.epoch;
    await this.applier.apply(batch.partition, batch.messages);
    // A batch read before a rebuild's seek must not count toward the new build.
    if (epoch === this.epoch && !isStale()) {
      const next = Number(batch.lastOffset()) + 1;
      this.applied.set(batch.partition, next);
      this.options.metrics.subscriptionAppliedOffset.set({ partition: String(batch.partition) }, next);
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
    await heartbeat();
  }
}
