import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { Partitioners } from 'kafkajs';
import { Registry } from './codec/registry.js';
import type { Config } from './config/config.js';
import { Deliverer } from './delivery/deliverer.js';
import { HttpClient } from './delivery/http-client.js';
import { TargetGuard } from './delivery/target-guard.js';
import { EventDeadLetters } from './ingest/dead-letters.js';
import { EventConsumer } from './ingest/event-consumer.js';
import { EventPipeline } from './ingest/pipeline.js';
import { createKafka } from './kafka/client.js';
import { ensureTopics, serviceTopics } from './kafka/topics.js';
import { Metrics } from './metrics/metrics.js';
import { type MetricsServer, startMetricsServer } from './metrics/server.js';
import { ResultsPublisher } from './outcomes/publisher.js';
import { errorMessage } from './shared/errors.js';
import { kafkaError } from './shared/kafka-errors.js';
import type { Logger } from './shared/logger.js';
import { retryWhileRetriable } from './shared/retry.js';
import { Semaphore } from './shared/semaphore.js';
import { redisError, SubscriptionStore } from './subscriptions/store.js';
import { SubscriptionSyncer } from './subscriptions/syncer.js';
import { SubscriptionTable } from './subscriptions/table.js';

const KAFKA_HEALTH_INTERVAL_MS = 5000;

/** The dispatcher: every component, wired from one validated Config. */
export class App {
  readonly metrics = new Metrics();
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private readonly producer: Producer;
  private readonly redis: Redis;
  private readonly http: HttpClient;
  private readonly limiter: Semaphore;
  private readonly syncer: SubscriptionSyncer;
  private readonly consumer: EventConsumer;
  private readonly publisher: ResultsPublisher;
  private server: MetricsServer | null = null;
  private stopping = false;
  private kafkaHealth: { ok: boolean; error: string } = { ok: false, error: 'not checked yet' };
  private healthTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    const isStopping = () => this.stopping;
    this.kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-${config.instanceId}`, log });
    this.admin = this.kafka.admin();
    this.producer = this.kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    });
    this.redis = new Redis(config.redis.url, {
      // Fail commands fast while disconnected; callers wait and retry, and readiness says why.
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      retryStrategy: (times) => Math.min(times * 100, 2000),
    });
    this.redis.on('error', (err) => this.log.warn('redis connection error', { error: errorMessage(err) }));
    const registry = new Registry(config.schemaRegistryUrl);
    const store = new SubscriptionStore(this.redis, config.redis.keyPrefix);
    const table = new SubscriptionTable(store, config.subscriptions, this.metrics);
    this.syncer = new SubscriptionSyncer({
      kafka: this.kafka,
      admin: this.admin,
      topic: config.topics.subscriptions,
      // Every replica reads the whole table topic, so each has a group of its own.
      groupId: `${config.kafka.consumerGroup}.table.${config.instanceId}.${randomBytes(4).toString('hex')}`,
      registry,
      store,
      table,
      metrics: this.metrics,
      log: log.child({ component: 'subscriptions' }),
      freshnessTimeoutMs: config.subscriptions.freshnessTimeoutMs,
    });
    this.http = new HttpClient({ ...config.delivery, guard: new TargetGuard(config.delivery.allowlist) });
    this.publisher = new ResultsPublisher({
      producer: this.producer,
      registry,
      topic: config.topics.results,
      log,
      metrics: this.metrics,
      isStopping,
    });
    this.limiter = new Semaphore(config.delivery.maxInFlight);
    const pipeline = new EventPipeline({
      registry,
      table,
      ensureFresh: (since) => this.syncer.ensureFresh(since),
      deliverer: new Deliverer(this.http, config.delivery.userAgent),
      publisher: this.publisher,
      deadLetters: new EventDeadLetters({
        producer: this.producer,
        topic: config.topics.dlq,
        sourceTopic: config.topics.events,
        metrics: this.metrics,
        log,
        isStopping,
      }),
      limiter: this.limiter,
      metrics: this.metrics,
      log,
      retry: (fn, what) => this.retry(fn, what),
    });
    this.consumer = new EventConsumer({
      kafka: this.kafka,
      topic: config.topics.events,
      groupId: config.kafka.consumerGroup,
      pipeline,
      metrics: this.metrics,
      log: log.child({ component: 'events' }),
      partitionsConsumedConcurrently: config.kafka.partitionsConsumedConcurrently,
      commitIntervalMs: config.kafka.commitIntervalMs,
      sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    });
  }

  /** The port /metrics listens on (useful with METRICS_PORT=0). */
  get metricsPort(): number {
    return this.server?.port ?? 0;
  }

  /** Starts everything; resolves once events are being consumed. Waits out unreachable dependencies. */
  async start(): Promise<void> {
    this.server = await startMetricsServer({
      port: this.config.metrics.port,
      host: this.config.metrics.host,
      metrics: this.metrics,
      readiness: {
        consumer: () => (this.consumer.isJoined() ? null : 'not a member of the events consumer group'),
        subscriptions: () => (this.syncer.isReady() ? null : 'subscription table not caught up'),
        redis: () => (this.redis.status === 'ready' ? null : `redis connection is ${this.redis.status}`),
        kafka: () => (this.kafkaHealth.ok ? null : `kafka: ${this.kafkaHealth.error}`),
        shutdown: () => (this.stopping ? 'shutting down' : null),
      },
    });
    this.log.info('starting', { metricsPort: this.server.port, instanceId: this.config.instanceId });
    await this.retry(() => this.redis.ping().catch((e) => Promise.reject(redisError('ping', e))), 'connecting to Redis');
    await this.retry(async () => {
      try {
        await this.admin.connect();
        await this.producer.connect();
      } catch (err) {
        throw kafkaError('connecting', err);
      }
    }, 'connecting to Kafka');
    await this.checkKafka();
    this.healthTimer = setInterval(() => void this.checkKafka(), KAFKA_HEALTH_INTERVAL_MS);
    this.healthTimer.unref();
    await this.retry(() => ensureTopics(this.admin, serviceTopics(this.config), this.config, this.log), 'creating topics');
    await this.retry(() => this.publisher.start(), 'registering the results schema');
    await this.syncer.start();
    await this.consumer.start();
    this.log.info('dispatcher running');
  }

  /**
   * Stops fetching, gives in-flight deliveries up to SHUTDOWN_GRACE_MS to finish and be recorded,
   * commits what finished, leaves the group and closes every connection.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.log.info('stopping: no new events; finishing deliveries under way', { pending: this.consumer.pending() });
    this.consumer.pause();
    const deadline = Date.now() + this.config.shutdownGraceMs;
    while (this.consumer.pending() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const left = this.consumer.pending();
    this.stopping = true;
    this.limiter.close();
    if (left > 0) this.log.warn('grace period over; unfinished events will be read again by the group', { left });
    await this.consumer.stop().catch((err) => this.log.warn('consumer stop failed', { error: errorMessage(err) }));
    await this.syncer.stop().catch(() => {});
    if (this.healthTimer) clearInterval(this.healthTimer);
    await this.producer.disconnect().catch(() => {});
    await this.admin.disconnect().catch(() => {});
    await this.http.close().catch(() => {});
    this.redis.disconnect();
    await this.server?.close();
    this.log.info('stopped', { unfinished: left });
  }

  private async checkKafka(): Promise<void> {
    try {
      await this.admin.describeCluster();
      this.kafkaHealth = { ok: true, error: '' };
    } catch (err) {
      this.kafkaHealth = { ok: false, error: errorMessage(err) };
    }
  }

  private retry<T>(fn: () => Promise<T>, what: string): Promise<T> {
    return retryWhileRetriable(fn, {
      isStopping: () => this.stopping,
      onRetry: (err, attempt, delayMs) => {
        this.metrics.infraRetries.inc({ code: err.code });
        if (attempt === 1 || attempt % 10 === 0) {
          this.log.warn(`waiting for infrastructure: ${what}`, { code: err.code, error: err.message, attempt, delayMs });
        }
      },
    });
  }
}
