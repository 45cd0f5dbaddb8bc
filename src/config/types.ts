import type { LogLevel } from '../shared/index.js';

/** The service's whole configuration, validated once at start-up and frozen. */
export interface Config {
  readonly kafka: {
    /** KAFKA_BROKERS. */
    readonly brokers: readonly string[];
    /** KAFKA_CLIENT_ID. */
    readonly clientId: string;
    /** CONSUMER_GROUP. */
    readonly consumerGroup: string;
    /** TOPIC_PARTITIONS: partitions of topics the dispatcher creates. */
    readonly topicPartitions: number;
    /** TOPIC_REPLICATION_FACTOR for topics it creates; -1 takes the broker's default. */
    readonly topicReplicationFactor: number;
    /** PARTITIONS_CONSUMED_CONCURRENTLY: event partitions handled at once. */
    readonly partitionsConsumedConcurrently: number;
    /** COMMIT_INTERVAL_MS: how often finished offsets are committed. */
    readonly commitIntervalMs: number;
    /** KAFKA_SESSION_TIMEOUT_MS: how long a replica that died keeps its partitions. */
    readonly sessionTimeoutMs: number;
    /** KAFKA_MAX_MESSAGE_BYTES: largest produce request the service sends (the broker's message.max.bytes or less). */
    readonly maxMessageBytes: number;
    /** STALL_TIMEOUT_MS: an offset unfinished this long (dependencies up) is dead-lettered as STALLED. */
    readonly stallTimeoutMs: number;
  };
  readonly topics: {
    /** EVENTS_TOPIC. */
    readonly events: string;
    /** SUBSCRIPTIONS_TOPIC (compacted). */
    readonly subscriptions: string;
    /** RESULTS_TOPIC. */
    readonly results: string;
    /** DLQ_TOPIC: undecodable events. */
    readonly dlq: string;
  };
  /** SCHEMA_REGISTRY_URL. */
  readonly schemaRegistryUrl: string;
  readonly redis: {
    /** REDIS_URL. */
    readonly url: string;
    /** REDIS_CLUSTER_NODES: seeds of a Redis Cluster (host:port, comma-separated); empty for one node. */
    readonly clusterNodes: readonly string[];
    /** REDIS_KEY_PREFIX: every key the service writes starts with it. */
    readonly keyPrefix: string;
  };
  readonly subscriptions: {
    /** SUBSCRIPTION_CACHE_MAX_ENTRIES: (project, event type) entries kept in process. */
    readonly cacheMaxEntries: number;
    /** SUBSCRIPTION_CACHE_TTL_MS: a safety net; changes invalidate entries at once. */
    readonly cacheTtlMs: number;
    /** SUBSCRIPTION_FRESHNESS_TIMEOUT_MS: longest wait for the table to cover an event's time. */
    readonly freshnessTimeoutMs: number;
  };
  readonly delivery: {
    /** MAX_IN_FLIGHT_DELIVERIES: global bound on deliveries under way. */
    readonly maxInFlight: number;
    /** MAX_CONNECTIONS_PER_ORIGIN: keep-alive pool size per endpoint origin. */
    readonly maxConnectionsPerOrigin: number;
    /** MAX_IDLE_CONNECTIONS: idle connections kept across all origins; the least recently used go first. */
    readonly maxIdleConnections: number;
    /** TLS_SESSION_CACHE_SIZE: TLS sessions kept for resumption, across all origins (0: none). */
    readonly tlsSessionCacheSize: number;
    /** DNS_CACHE_TTL_MS: how long an endpoint host's addresses are used again (0: looked up for every connection). */
    readonly dnsCacheTtlMs: number;
    /** DELIVERY_CONNECT_TIMEOUT_MS. */
    readonly connectTimeoutMs: number;
    /** DELIVERY_HEADERS_TIMEOUT_MS: wait for the response headers. */
    readonly headersTimeoutMs: number;
    /** DELIVERY_BODY_TIMEOUT_MS: longest silence while reading the response body. */
    readonly bodyTimeoutMs: number;
    /** DELIVERY_TIMEOUT_MS: overall deadline of one attempt. */
    readonly attemptTimeoutMs: number;
    /** MAX_RESPONSE_BYTES: at most this much of a response body is read. */
    readonly maxResponseBytes: number;
    /** DELIVERY_ALLOWLIST: CIDRs and host names that may be reached although internal. */
    readonly allowlist: readonly string[];
    /** DELIVERY_USER_AGENT. */
    readonly userAgent: string;
  };
  readonly retries: {
    /** RETRY_SCHEDULE: delay before each retry, or "none". */
    readonly scheduleMs: readonly number[];
    /** RETRY_JITTER: each delay is shortened by up to this share. */
    readonly jitter: number;
    /** RETRY_AFTER_MAX_MS: longest Retry-After honoured. */
    readonly retryAfterMaxMs: number;
    /** RETRY_ON_STATUS: 4xx statuses retried anyway, comma-separated. */
    readonly retryOnStatus: ReadonlySet<number>;
    /** RETRY_TOPIC_PREFIX: one delay topic per schedule step, "<prefix>.<delay>". */
    readonly topicPrefix: string;
    /** DELIVERY_DLQ_TOPIC: deliveries whose retries ran out. */
    readonly dlqTopic: string;
  };
  readonly health: {
    /** STATUS_TOPIC: endpoint status changes (HEALTHY/UNHEALTHY), key = webhook id. */
    readonly statusTopic: string;
    /** CB_FAILURE_THRESHOLD: consecutive failures that open the circuit. */
    readonly failureThreshold: number;
    /** CB_FAILURE_RATE: failure share over the window that opens it. */
    readonly failureRate: number;
    /** CB_WINDOW_MS: window for the failure rate. */
    readonly windowMs: number;
    /** CB_MIN_REQUESTS: attempts in the window before the rate counts. */
    readonly minRequests: number;
    /** CB_PROBE_INTERVAL_MS: while open, one probe is let through this often. */
    readonly probeIntervalMs: number;
    /** DISABLE_AFTER: UNHEALTHY this long gives one status event with reason disable_recommended. */
    readonly disableAfterMs: number;
  };
  readonly isolation: {
    /** ENDPOINT_MAX_CONCURRENCY: deliveries under way to one origin. */
    readonly maxConcurrency: number;
    /** ENDPOINT_MAX_QUEUE: deliveries queued for one origin (or one entity) before the events consumer waits for room. */
    readonly maxQueue: number;
    /** ENDPOINT_MAX_WAIT_MS: the longest expected wait for an endpoint (or a rate-limit slot); beyond, the retry path. */
    readonly maxWaitMs: number;
  };
  readonly ordering: {
    /** ORDERING_MAX_HELD: deliveries one entity's line may hold in Redis for an ordered webhook. */
    readonly maxHeld: number;
  };
  readonly tracing: {
    /** OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP collector base URL; empty (default) for no tracing. */
    readonly endpoint: string;
    /** OTEL_SERVICE_NAME. */
    readonly serviceName: string;
  };
  readonly deliveryLog: {
    /**
     * DELIVERY_LOG: `on`, this replica also keeps each webhook's recent attempts in Redis (the owner
     * API reads them); `off`, it does not; `only`, it does that and delivers nothing (the log run apart).
     */
    readonly mode: 'on' | 'off' | 'only';
    /** DELIVERY_LOG_MAX_PER_WEBHOOK: attempts kept per webhook, newest. */
    readonly maxPerWebhook: number;
    /** DELIVERY_LOG_RETENTION: how long an attempt is kept. */
    readonly retentionMs: number;
  };
  readonly api: {
    /** API_TOKEN: the owner API's bearer token; empty (default) leaves the API off. */
    readonly token: string;
    /** API_PORT. */
    readonly port: number;
    /** API_HOST. */
    readonly host: string;
    /** API_RATE_LIMIT_PER_SECOND: requests a replica answers a second; more get 429. */
    readonly ratePerSecond: number;
  };
  readonly metrics: {
    /** METRICS_PORT: /metrics, /healthz and /readyz. */
    readonly port: number;
    /** METRICS_HOST. */
    readonly host: string;
  };
  /** SHUTDOWN_GRACE_MS: time given to in-flight deliveries on SIGTERM. */
  readonly shutdownGraceMs: number;
  /** LOG_LEVEL. */
  readonly logLevel: LogLevel;
  /** INSTANCE_ID: names this replica in logs and client ids. */
  readonly instanceId: string;
}
