import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ErrorCode } from '../shared/index.js';

const PREFIX = 'blue_webhooks_';
/** The codes infrastructure_retries_total counts (the retriable infrastructure ErrorCodes). */
const INFRASTRUCTURE_CODES = [
  'REDIS_UNAVAILABLE',
  'KAFKA_UNAVAILABLE',
  'REGISTRY_UNAVAILABLE',
] as const satisfies readonly ErrorCode[];
/** The reasons events are dead-lettered for (docs/contract.md#dlq-records). */
const EVENT_DLQ_REASONS = [
  'DECODE_FAILED',
  'UNKNOWN_SCHEMA',
  'INVALID_JSON',
  'INVALID_EVENT',
  'INTERNAL_ERROR',
  'STALLED',
] as const satisfies readonly ErrorCode[];
// Event types are an open set; cap the distinct label values so a flood of odd types cannot
// blow up the series count. Later types are reported as "other".
const MAX_EVENT_TYPE_LABELS = 200;

/** All of the service's metrics, on a registry of their own (no global state). */
export class Metrics {
  readonly registry = new Registry();
  private readonly eventTypes = new Set<string>();

  readonly eventsConsumed = new Counter({
    name: `${PREFIX}events_consumed_total`,
    help: 'Events read from the events topic, decodable or not.',
    registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: `${PREFIX}deliveries_total`,
    help: 'Delivery attempts by outcome and event type.',
    labelNames: ['outcome', 'event_type'] as const,
    registers: [this.registry],
  });
  readonly deliveryDuration = new Histogram({
    name: `${PREFIX}delivery_duration_seconds`,
    help: 'Time of one HTTP delivery attempt.',
    labelNames: ['outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly eventToDelivery = new Histogram({
    name: `${PREFIX}event_to_delivery_seconds`,
    help: "From the event's time (occurredAt, else its Kafka timestamp) to a delivered response.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: `${PREFIX}deliveries_in_flight`,
    help: 'Deliveries started and not yet recorded.',
    registers: [this.registry],
  });
  readonly consumerLag = new Gauge({
    name: `${PREFIX}consumer_lag`,
    help: "Records between the group's committed offset and the partition end (what KEDA and lag exporters see), per assigned partition of the events and retry topics.",
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly oldestUnfinished = new Gauge({
    name: `${PREFIX}oldest_unfinished_seconds`,
    help: 'Age of the oldest offset taken in and not finished (it holds the commit back), per assigned partition; 0 when none.',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly stalls = new Counter({
    name: `${PREFIX}stalls_total`,
    help: 'Offsets unfinished for STALL_TIMEOUT_MS while Redis and Kafka answered, by consumer; each was dead-lettered as STALLED.',
    labelNames: ['consumer'] as const,
    registers: [this.registry],
  });
  readonly internalErrors = new Counter({
    name: `${PREFIX}internal_errors_total`,
    help: 'Unexpected errors while handling one record, by stage; the record was dead-lettered as INTERNAL_ERROR.',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });
  readonly filterBudgetExceeded = new Counter({
    name: `${PREFIX}filter_budget_exceeded_total`,
    help: 'Filter evaluations stopped for visiting too many values; that webhook did not get that event.',
    registers: [this.registry],
  });
  readonly eventsUnmatched = new Counter({
    name: `${PREFIX}events_unmatched_total`,
    help: 'Decoded events that matched no webhook.',
    registers: [this.registry],
  });
  readonly subscriptionsLoaded = new Gauge({
    name: `${PREFIX}subscriptions_loaded`,
    help: 'Live subscriptions in the shared table.',
    registers: [this.registry],
  });
  readonly subscriptionSyncLag = new Gauge({
    name: `${PREFIX}subscription_sync_lag`,
    help: 'Subscription records not yet applied by this replica, as of the last check.',
    registers: [this.registry],
  });
  readonly subscriptionTableComplete = new Gauge({
    name: `${PREFIX}subscription_table_complete`,
    help: 'Whether this replica has built the subscription table and caught up with the topic as of its start (1) or not yet (0).',
    registers: [this.registry],
  });
  readonly subscriptionAppliedOffset = new Gauge({
    name: `${PREFIX}subscription_applied_offset`,
    help: 'Next offset of the subscriptions topic this replica applies, per partition.',
    labelNames: ['partition'] as const,
    registers: [this.registry],
  });
  readonly subscriptionEndOffset = new Gauge({
    name: `${PREFIX}subscription_end_offset`,
    help: 'End offset of the subscriptions topic as last read, per partition.',
    labelNames: ['partition'] as const,
    registers: [this.registry],
  });
  readonly freshnessWait = new Histogram({
    name: `${PREFIX}subscription_freshness_wait_seconds`,
    help: 'Time a batch of events waited for the subscription table to cover it.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly subscriptionsInvalid = new Counter({
    name: `${PREFIX}subscriptions_invalid_total`,
    help: 'Subscription records that could not be used (the webhook is inert until fixed), by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly cacheLookups = new Counter({
    name: `${PREFIX}subscription_cache_total`,
    help: 'In-process subscription cache lookups by result (hit or miss).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly decodeErrors = new Counter({
    name: `${PREFIX}decode_errors_total`,
    help: 'Event values that could not be decoded, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly eventsDeadLettered = new Counter({
    name: `${PREFIX}events_dead_lettered_total`,
    help: 'Events written to the events dead-letter topic, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly deliveriesDeadLettered = new Counter({
    name: `${PREFIX}deliveries_dead_lettered_total`,
    help: 'Deliveries whose retries ran out, written to the deliveries DLQ.',
    registers: [this.registry],
  });
  readonly tlsHandshakes = new Counter({
    name: `${PREFIX}tls_handshakes_total`,
    help: 'TLS handshakes with endpoints, by whether a kept session was resumed.',
    labelNames: ['resumed'] as const,
    registers: [this.registry],
  });
  /** What `httpConnections` reports at each scrape; set by the app once its HTTP client exists. */
  connectionCounts: (() => { open: number; idle: number }) | null = null;
  readonly httpConnections = new Gauge({
    name: `${PREFIX}http_connections`,
    help: 'Connections to endpoints open now (state="open"), and how many of them are idle (state="idle": nothing under way to their origin).',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: () => {
      const counts = this.connectionCounts?.();
      if (!counts) return;
      this.httpConnections.set({ state: 'open' }, counts.open);
      this.httpConnections.set({ state: 'idle' }, counts.idle);
    },
  });
  readonly idleConnectionsClosed = new Counter({
    name: `${PREFIX}http_idle_connections_closed_total`,
    help: 'Idle connections closed to stay within MAX_IDLE_CONNECTIONS, those of the origins used least recently first.',
    registers: [this.registry],
  });
  readonly duplicatesSkipped = new Counter({
    name: `${PREFIX}duplicates_skipped_total`,
    help: 'Records skipped because an identical one was just handled (a producer retry after a broker failure wrote it twice), by topic kind.',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly consumerCrashes = new Counter({
    name: `${PREFIX}consumer_crashes_total`,
    help: 'Kafka consumers that crashed, by consumer and by who started them again (kafkajs, or the service when kafkajs gave up).',
    labelNames: ['consumer', 'restarted_by'] as const,
    registers: [this.registry],
  });
  readonly retriesScheduled = new Counter({
    name: `${PREFIX}retries_scheduled_total`,
    help: 'Retries written to a delay topic, by reason (failure, circuit_open, endpoint_busy).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly retryLateness = new Histogram({
    name: `${PREFIX}retry_lateness_seconds`,
    help: 'How long after its due time a retry started.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly unhealthyEndpoints = new Gauge({
    name: `${PREFIX}unhealthy_endpoints`,
    help: 'Webhooks whose circuit is open (UNHEALTHY), across all replicas.',
    registers: [this.registry],
  });
  readonly endpointRejections = new Counter({
    name: `${PREFIX}endpoint_saturated_total`,
    help: 'Deliveries sent to the retry path because their endpoint did not keep up (its queue full and its expected wait over ENDPOINT_MAX_WAIT_MS).',
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: `${PREFIX}ready`,
    help: 'Readiness (what /readyz answers), per check: 1 passing, 0 failing. Set at each scrape.',
    labelNames: ['check'] as const,
    registers: [this.registry],
  });
  readonly backpressureWait = new Counter({
    name: `${PREFIX}backpressure_wait_seconds_total`,
    help: "Time the events consumer spent waiting for room in a busy endpoint's queue (or an entity's), instead of diverting deliveries.",
    registers: [this.registry],
  });
  readonly endpointThrottled = new Counter({
    name: `${PREFIX}endpoint_throttled_total`,
    help: 'Answers 429 Too Many Requests; each halves the concurrency that endpoint gets from this replica.',
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: `${PREFIX}rate_limited_total`,
    help: 'Deliveries held back by their webhook\'s rateLimitPerSecond: result "waited" (sent in a later slot) or "deferred" (the retry path, reason rate_limited).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly ordered = new Counter({
    name: `${PREFIX}ordered_total`,
    help: 'Deliveries to webhooks with ordering "entity", by step: held (behind an earlier delivery of the same entity), released (its turn came), repaired (a turn found without its retry record, re-written), stale (a retry record whose turn was over).',
    labelNames: ['step'] as const,
    registers: [this.registry],
  });
  readonly deliveryLogAppended = new Counter({
    name: `${PREFIX}delivery_log_appended_total`,
    help: 'Attempts written to the delivery log (DELIVERY_LOG) from the results topic.',
    registers: [this.registry],
  });
  readonly deliveryLogSkipped = new Counter({
    name: `${PREFIX}delivery_log_skipped_total`,
    help: 'Results not written to the delivery log, by reason: older than DELIVERY_LOG_RETENTION (EXPIRED), a record that cannot be read (DECODE_FAILED, UNKNOWN_SCHEMA, INVALID_RESULT) or that Redis refused (REDIS_REJECTED).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly deliveryLogLag = new Gauge({
    name: `${PREFIX}delivery_log_lag_seconds`,
    help: 'How far the delivery log is behind the results topic, by partition: the age of the last result logged while more wait, 0 when caught up.',
    labelNames: ['partition'] as const,
    registers: [this.registry],
  });
  readonly apiRequests = new Counter({
    name: `${PREFIX}api_requests_total`,
    help: 'Owner API requests, by route and status.',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly infraRetries = new Counter({
    name: `${PREFIX}infrastructure_retries_total`,
    help: 'Waits caused by an unreachable dependency (Redis, Kafka, the registry), by code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    // Series that exist at 0 from the start: increase() and rate() (and the alerts built on them)
    // see the first occurrence, which a series born at 1 would hide.
    for (const code of INFRASTRUCTURE_CODES) this.infraRetries.inc({ code }, 0);
    for (const reason of EVENT_DLQ_REASONS) this.eventsDeadLettered.inc({ reason }, 0);
  }

  private readonly deliveryCounters = new Map<string, { inc(): void }>();

  /** deliveries_total{outcome, event_type}, with the labelled child cached (this is on the hot path). */
  countDelivery(outcome: string, eventType: string): void {
    const label = this.eventTypeLabel(eventType);
    const key = `${outcome}\n${label}`;
    let child = this.deliveryCounters.get(key);
    if (!child) {
      child = this.deliveries.labels(outcome, label);
      this.deliveryCounters.set(key, child);
    }
    child.inc();
  }

  private readonly durationHistograms = new Map<string, { observe(v: number): void }>();

  /** delivery_duration_seconds{outcome}, with the labelled child cached. */
  observeDuration(outcome: string, seconds: number): void {
    let child = this.durationHistograms.get(outcome);
    if (!child) {
      child = this.deliveryDuration.labels(outcome);
      this.durationHistograms.set(outcome, child);
    }
    child.observe(seconds);
  }

  eventTypeLabel(type: string): string {
    if (this.eventTypes.has(type)) return type;
    if (this.eventTypes.size >= MAX_EVENT_TYPE_LABELS) return 'other';
    this.eventTypes.add(type);
    return type;
  }
}
