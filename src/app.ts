import { randomBytes } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { CircuitBreaker, statusEvent, type WebhookStatusEvent } from './breaker/index.js';
import { Registry } from './codec/index.js';
import type { Config } from './config/index.js';
import { Deliverer, EndpointGate, HttpClient, RateLimiter, TargetGuard } from './delivery/index.js';
import { EventPipeline, RetryHandler } from './ingest/index.js';
import {
  createKafka,
  createProducer,
  DeadLetters,
  ensureTopics,
  KafkaReadiness,
  KafkaWriter,
  kafkaError,
  type ProduceTransport,
  serviceTopics,
  TrackedConsumer,
} from './kafka/index.js';
import { Metrics, type MetricsServer, startMetricsServer } from './metrics/index.js';
import { EntityOrder } from './ordering/index.js';
import { DeliveryLog, LogConsumer, OwnerActions, type OwnerApi, startOwnerApi } from './owner/index.js';
import { AvroPublisher, type WebhookResult } from './results/index.js';
import { RetryScheduler, RetryTiers } from './retries/index.js';
import { DeliveryRunner } from './runner/index.js';
import {
  createRedisClient,
  drainUntil,
  errorMessage,
  type Logger,
  LoopDelay,
  type RedisClient,
  redisError,
  retryWhileRetriable,
  Semaphore,
  type UntilDone,
} from './shared/index.js';
import { SubscriptionStore, SubscriptionSyncer, SubscriptionTable } from './subscriptions/index.js';
import { Tracing } from './tracing/index.js';

/** The dispatcher: every component, wired from one validated Config. */
export class App {
  readonly metrics = new Metrics();
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private readonly kafkaReadiness: KafkaReadiness;
  private readonly producer: ProduceTransport;
  private readonly redis: RedisClient;
  private readonly http: HttpClient;
  private readonly limiter: Semaphore;
  private readonly syncer: SubscriptionSyncer;
  private readonly breaker: CircuitBreaker;
  private readonly tiers: RetryTiers;
  private readonly consumers: TrackedConsumer[];
  private readonly publishers: AvroPublisher<object>[];
  private readonly tracing: Tracing;
  private readonly loopDelay = new LoopDelay();
  private server: MetricsServer | null = null;
  private readonly deliveryLog: DeliveryLog;
  private readonly logConsumer: LogConsumer | null;
  private readonly actions: OwnerActions | null;
  private api: OwnerApi | null = null;
  private stopping = false;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    const isStopping = () => this.stopping;
    this.kafka = createKafka({
      brokers: config.kafka.brokers,
      clientId: `${config.kafka.clientId}-${config.instanceId}`,
      log,
    });
    this.admin = this.kafka.admin();
    this.kafkaReadiness = new KafkaReadiness({
      brokers: config.kafka.brokers,
      clientId: `${config.kafka.clientId}-${config.instanceId}-health`,
      log,
    });
    this.producer = createProducer({
      brokers: config.kafka.brokers,
      clientId: `${config.kafka.clientId}-${config.instanceId}`,
    });
    this.redis = createRedisClient(config.redis, {
      // Fail commands fast while disconnected; callers wait and retry, and readiness says why.
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      // Commands issued in the same tick share one round trip.
      enableAutoPipelining: true,
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
      untilDone: (fn, what) => this.untilDone(fn, what),
    });
    const guard = new TargetGuard(config.delivery.allowlist, { cacheTtlMs: config.delivery.dnsCacheTtlMs });
    for (const rule of guard.allowsEverything) {
      log.warn('DELIVERY_ALLOWLIST lets deliveries reach every address of a family, internal ones included', { rule });
    }
    // A pool never needs more connections than deliveries the endpoint gate lets under way to its origin.
    const maxConnectionsPerOrigin = Math.min(config.delivery.maxConnectionsPerOrigin, config.isolation.maxConcurrency);
    this.http = new HttpClient({ ...config.delivery, maxConnectionsPerOrigin, guard, metrics: this.metrics });
    this.metrics.connectionCounts = () => this.http.connectionStats();
    const writer = new KafkaWriter({
      transport: this.producer,
      metrics: this.metrics,
      log,
      isStopping,
      maxRequestBytes: config.kafka.maxMessageBytes,
    });
    const publisher = <T extends object>(schema: 'webhook-result' | 'webhook-status', topic: string) =>
      new AvroPublisher<T>({ writer, registry, schema, topic });
    const results = publisher<WebhookResult>('webhook-result', config.topics.results);
    const statuses = publisher<WebhookStatusEvent>('webhook-status', config.health.statusTopic);
    this.publishers = [results, statuses];
    this.breaker = new CircuitBreaker({
      redis: this.redis,
      prefix: config.redis.keyPrefix,
      ...config.health,
      onDisableRecommended: (webhookId, consecutiveFailures) =>
        statuses.publish(webhookId, statusEvent(webhookId, 'disable_recommended', consecutiveFailures, null)),
      metrics: this.metrics,
      log: log.child({ component: 'health' }),
    });
    this.tiers = new RetryTiers(config.retries.topicPrefix, config.retries.scheduleMs);
    this.limiter = new Semaphore(config.delivery.maxInFlight);
    const untilDone: UntilDone = (fn, what) => this.untilDone(fn, what);
    this.tracing = new Tracing({ ...config.tracing, instanceId: config.instanceId });
    const scheduler = new RetryScheduler({
      writer,
      tiers: this.tiers,
      dlqTopic: config.retries.dlqTopic,
      metrics: this.metrics,
    });
    const runner = new DeliveryRunner({
      deliverer: new Deliverer(this.http, config.delivery.userAgent),
      breaker: this.breaker,
      gate: new EndpointGate({ ...config.isolation, ownDelayMs: () => this.loopDelay.recentMs() }),
      rateLimiter: new RateLimiter(this.redis, config.redis.keyPrefix, config.isolation.maxWaitMs),
      order: new EntityOrder(this.redis, config.redis.keyPrefix, config.ordering.maxHeld),
      maxEntityQueue: config.isolation.maxQueue,
      scheduler,
      results,
      statuses,
      policy: config.retries,
      metrics: this.metrics,
      untilDone,
      tracing: this.tracing,
    });
    const consumerOptions = {
      kafka: this.kafka,
      admin: this.admin,
      metrics: this.metrics,
      partitionsConsumedConcurrently: config.kafka.partitionsConsumedConcurrently,
      commitIntervalMs: config.kafka.commitIntervalMs,
      sessionTimeoutMs: config.kafka.sessionTimeoutMs,
      stallTimeoutMs: config.kafka.stallTimeoutMs,
      rebalanceDrainMs: config.shutdownGraceMs,
      dependenciesUp: () => this.redis.status === 'ready' && this.kafkaReadiness.problem === null,
    };
    const events = new TrackedConsumer({
      ...consumerOptions,
      name: 'events',
      topics: [config.topics.events],
      groupId: config.kafka.consumerGroup,
      log: log.child({ component: 'events' }),
      handler: new EventPipeline({
        registry,
        table,
        ensureFresh: (since) => this.syncer.ensureFresh(since),
        runner,
        deadLetters: new DeadLetters({
          writer,
          topic: config.topics.dlq,
          count: (reason) => this.metrics.eventsDeadLettered.inc({ reason }),
          log,
        }),
        limiter: this.limiter,
        metrics: this.metrics,
        log: log.child({ component: 'events' }),
        untilDone,
        tracing: this.tracing,
      }),
    });
    this.consumers = [events];
    if (this.tiers.topics.length > 0) {
      this.consumers.push(
        new TrackedConsumer({
          ...consumerOptions,
          name: 'retries',
          topics: this.tiers.topics,
          groupId: `${config.kafka.consumerGroup}.retries`,
          log: log.child({ component: 'retries' }),
          handler: new RetryHandler({
            table,
            runner,
            limiter: this.limiter,
            deadLetters: new DeadLetters({
              writer,
              topic: config.retries.dlqTopic,
              count: () => this.metrics.deliveriesDeadLettered.inc(),
              log,
            }),
            metrics: this.metrics,
            log,
            untilDone,
          }),
        }),
      );
    }
    // DELIVERY_LOG=only: the log run apart from the replicas that deliver.
    if (config.deliveryLog.mode === 'only') this.consumers = [];
    this.deliveryLog = new DeliveryLog(this.redis, config.redis.keyPrefix, config.deliveryLog);
    this.actions =
      this.tiers.topics.length === 0
        ? null
        : new OwnerActions({
            table,
            log: this.deliveryLog,
            kafka: this.kafka,
            registry,
            // Due now, on the first retry topic: the normal path from there on.
            schedule: (record) => scheduler.schedule(record, 0),
          });
    this.logConsumer =
      config.deliveryLog.mode !== 'off'
        ? new LogConsumer({
            kafka: this.kafka,
            topic: config.topics.results,
            // A group of its own: the log is written once per result, and never holds up deliveries.
            groupId: `${config.kafka.consumerGroup}.delivery-log`,
            registry,
            log: this.deliveryLog,
            metrics: this.metrics,
            logger: log.child({ component: 'delivery-log' }),
            untilDone,
          })
        : null;
  }

  /** Starts everything; resolves once events are being consumed. Waits out unreachable dependencies. */
  async start(): Promise<void> {
    this.server = await startMetricsServer({
      port: this.config.metrics.port,
      host: this.config.metrics.host,
      metrics: this.metrics,
      readiness: {
        consumer: () => (this.consumers.every((c) => c.isJoined()) ? null : 'not a member of every consumer group'),
        subscriptions: () =>
          this.deliversNothing() || this.syncer.isReady() ? null : 'subscription table not caught up',
        redis: () => (this.redis.status === 'ready' ? null : `redis connection is ${this.redis.status}`),
        kafka: () => (this.kafkaReadiness.problem === null ? null : `kafka: ${this.kafkaReadiness.problem}`),
        stalled: () => {
          const stalled = this.consumers.flatMap((c) => c.stalledPartitions());
          return stalled.length === 0 ? null : `offsets unfinished for STALL_TIMEOUT_MS in ${stalled.join(', ')}`;
        },
        shutdown: () => (this.stopping ? 'shutting down' : null),
      },
    });
    this.log.info('starting', { metricsPort: this.server.port, instanceId: this.config.instanceId });
    await this.untilDone(
      () => this.redis.ping().catch((e) => Promise.reject(redisError('ping', e))),
      'connecting to Redis',
    );
    await this.untilDone(async () => {
      try {
        await this.admin.connect(); // the producer connects with its first request
      } catch (err) {
        throw kafkaError('connecting', err);
      }
    }, 'connecting to Kafka');
    await this.kafkaReadiness.start();
    const topics = serviceTopics(this.config, this.tiers.topics);
    await this.untilDone(() => ensureTopics(this.admin, topics, this.config, this.log), 'creating topics');
    for (const p of this.publishers) await this.untilDone(() => p.start(), 'registering schemas');
    await this.untilDone(() => this.breaker.start(), 'reading circuit states');
    await this.tracing.init();
    if (!this.deliversNothing()) {
      await this.syncer.start();
      this.loopDelay.start();
    }
    for (const c of this.consumers) await c.start();
    await this.logConsumer?.start();
    if (this.config.api.token !== '') {
      this.api = await startOwnerApi({
        ...this.config.api,
        log: this.deliveryLog,
        actions: this.actions,
        metrics: this.metrics,
        logger: this.log.child({ component: 'api' }),
      });
      this.log.info('owner API listening', { apiPort: this.api.port });
    }
    this.log.info('dispatcher running');
  }

  /**
   * Stops fetching, gives in-flight deliveries up to SHUTDOWN_GRACE_MS to finish and be recorded,
   * commits what finished, leaves the group and closes every connection.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    const pending = () => this.consumers.reduce((n, c) => n + c.pending(), 0);
    this.log.info('stopping: no new events; finishing deliveries under way', { pending: pending() });
    for (const c of this.consumers) c.pause();
    const left = await drainUntil(pending, Date.now() + this.config.shutdownGraceMs);
    this.stopping = true;
    this.limiter.close();
    if (left > 0) this.log.warn('grace period over; unfinished work will be read again by the group', { left });
    for (const c of this.consumers) {
      await c.stop().catch((err: unknown) => this.log.warn('consumer stop failed', { error: errorMessage(err) }));
    }
    await this.api?.close();
    await this.logConsumer?.stop().catch(() => {});
    this.breaker.stop();
    this.loopDelay.stop();
    await this.syncer.stop().catch(() => {});
    await this.producer.close().catch(() => {});
    await this.admin.disconnect().catch(() => {});
    await this.kafkaReadiness.stop();
    await this.http.close().catch(() => {});
    await this.tracing.shutdown().catch(() => {});
    this.redis.disconnect();
    await this.server?.close();
    this.log.info('stopped', { unfinished: left });
  }

  /** DELIVERY_LOG=only: this replica keeps the delivery log (and serves the API), and delivers nothing. */
  private deliversNothing(): boolean {
    return this.config.deliveryLog.mode === 'only';
  }

  private untilDone<T>(fn: () => Promise<T>, what: string): Promise<T> {
    return retryWhileRetriable(fn, {
      isStopping: () => this.stopping,
      onRetry: (err, attempt, delayMs) => {
        this.metrics.infraRetries.inc({ code: err.code });
        if (attempt === 1 || attempt % 10 === 0) {
          this.log.warn(`waiting for infrastructure: ${what}`, {
            code: err.code,
            error: err.message,
            attempt,
            delayMs,
          });
        }
      },
    });
  }
}
