import { randomUUID } from 'node:crypto';
import type { Admin, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { Registry } from '../codec/index.js';
import { SupervisedConsumer } from '../kafka/index.js';
import type { Metrics } from '../metrics/index.js';
import { BlueWebhooksError, errorMessage, type Logger } from '../shared/index.js';
import type { RecordPosition, SubscriptionStore, TableChange } from './store.js';
import { decodeSubscription } from './subscription.js';
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
  /** Runs an infrastructure call until it succeeds (the app's one retry policy). */
  retry: <T>(fn: () => Promise<T>, what: string) => Promise<T>;
}

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
  private projectsById = new Map<string, readonly string[]>();
  private confirmedAt = 0;
  private probe: Probe | null = null;
  private epoch = 0;
  private buildToken = randomUUID();
  private ready = false;
  private rebuilding: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;

  constructor(private readonly options: SubscriptionSyncerOptions) {}

  /** Starts consuming and resolves once the table has caught up with the topic's end as of now. */
  async start(): Promise<void> {
    const { kafka, topic, groupId } = this.options;
    await this.options.retry(() => this.options.store.beginBuild(this.buildToken), 'starting the table build');
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
    this.timer = setInterval(() => void this.check(), this.options.checkIntervalMs ?? 1000);
    this.timer.unref();
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

  /** Checks that the table is still in Redis; rebuilds it from the topic when it is gone. */
  async check(): Promise<void> {
    if (!this.ready || this.rebuilding || this.stopping) return;
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
    await this.restartBuild();
    await this.completeBuild();
  }

  /** Forgets what this replica applied and re-reads the topic from its beginning. */
  private async restartBuild(): Promise<void> {
    this.epoch++;
    this.applied = new Map();
    this.projectsById.clear();
    this.options.table.clear();
    this.confirmedAt = 0;
    this.buildToken = randomUUID();
    await this.options.retry(() => this.options.store.beginBuild(this.buildToken), 'restarting the table build');
    const partitions = await this.options.retry(() => this.endOffsets(), 'listing partitions');
    for (const partition of partitions.keys())
      this.consumer!.current!.seek({ topic: this.options.topic, partition, offset: '0' });
  }

  private async completeBuild(): Promise<void> {
    for (;;) {
      await this.ensureFresh(Date.now(), 3_600_000);
      if (await this.options.retry(() => this.options.store.markReady(this.buildToken), 'marking the table ready'))
        break;
      this.options.log.warn('Redis was flushed during the table build; building again');
      await this.restartBuild();
    }
    this.ready = true;
    this.options.metrics.subscriptionsLoaded.set(await this.options.store.liveCount().catch(() => 0));
    this.options.log.info('subscription table ready');
  }

  private startProbe(): Probe {
    const startedAt = Date.now();
    const done = (async () => {
      const target = await this.options.retry(() => this.endOffsets(), 'reading subscription end offsets');
      const behind = () => {
        let lag = 0;
        for (const [p, high] of target) lag += Math.max(0, high - (this.applied.get(p) ?? 0));
        return lag;
      };
      for (let lag = behind(); lag > 0; lag = behind()) {
        this.options.metrics.subscriptionSyncLag.set(lag);
        if (this.stopping) throw new BlueWebhooksError('SHUTTING_DOWN', 'subscription syncer stopped');
        await new Promise<void>((r) => this.waiters.push(r));
      }
      this.options.metrics.subscriptionSyncLag.set(0);
      this.confirmedAt = Math.max(this.confirmedAt, startedAt);
    })().finally(() => {
      if (this.probe?.done === done) this.probe = null;
    });
    return { startedAt, done };
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
    const changes: { change: TableChange; pos: RecordPosition }[] = [];
    for (const m of batch.messages) {
      const change = await this.toChange(m);
      if (change) {
        changes.push({
          change,
          pos: { partition: batch.partition, offset: Number(m.offset), updatedAtMs: updatedAtOf(change, m) },
        });
      }
    }
    const results = await this.options.retry(
      () => this.options.store.applyAll(changes),
      'applying subscription changes',
    );
    const touched = new Set<string>();
    results.forEach((r, i) => {
      const { change } = changes[i]!;
      for (const p of r.projects) touched.add(p);
      for (const p of this.projectsById.get(change.id) ?? []) touched.add(p);
      if (change.kind === 'put') this.projectsById.set(change.id, change.sub.metadata.projectIds);
      else this.projectsById.delete(change.id);
    });
    this.options.table.invalidate(touched);
    // A batch read before a rebuild's seek must not count toward the new build.
    if (epoch === this.epoch && !isStale()) {
      this.applied.set(batch.partition, Number(batch.lastOffset()) + 1);
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
    await heartbeat();
  }

  private async toChange(m: KafkaMessage): Promise<TableChange | null> {
    const id = m.key?.toString('utf8') ?? '';
    if (!id) {
      this.options.metrics.subscriptionsInvalid.inc({ reason: 'MISSING_KEY' });
      this.options.log.warn('subscription record without a key skipped', { offset: m.offset });
      return null;
    }
    if (m.value === null) return { kind: 'delete', id };
    try {
      const sub = await this.options.retry(
        () => decodeSubscription(m.value!, id, this.options.registry),
        'decoding a subscription',
      );
      return { kind: 'put', id, sub };
    } catch (err) {
      if (err instanceof BlueWebhooksError && err.code === 'SHUTTING_DOWN') throw err;
      const code = err instanceof BlueWebhooksError ? err.code : 'INVALID_SUBSCRIPTION';
      this.options.metrics.subscriptionsInvalid.inc({ reason: code });
      this.options.log.warn('subscription unusable; the webhook is inert until a valid record replaces it', {
        webhookId: id,
        offset: m.offset,
        code,
        reason: errorMessage(err),
      });
      return { kind: 'inert', id, reason: `${code}: ${errorMessage(err)}` };
    }
  }
}

function updatedAtOf(change: TableChange, m: KafkaMessage): number {
  if (change.kind === 'put') return Date.parse(change.sub.updatedAt);
  return Number(m.timestamp);
}
