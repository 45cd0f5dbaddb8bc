import net from 'node:net';
import os from 'node:os';
import { BlueWebhooksError } from '../shared/index.js';
import {
  parseBrokers,
  parseDurationMs,
  parseEnum,
  parseHost,
  parseIntInRange,
  parseList,
  parseTopicName,
  parseUrl,
} from './parse.js';
import type { Config } from './types.js';

export const VERSION = '0.1.0';

type Env = Readonly<Record<string, string | undefined>>;

/** Every variable with its default; one place. */
export const DEFAULTS = Object.freeze({
  KAFKA_BROKERS: '127.0.0.1:9092',
  KAFKA_CLIENT_ID: 'blue-webhooks',
  CONSUMER_GROUP: 'blue-webhooks',
  TOPIC_PARTITIONS: '12',
  TOPIC_REPLICATION_FACTOR: '-1',
  PARTITIONS_CONSUMED_CONCURRENTLY: '4',
  COMMIT_INTERVAL_MS: '200',
  KAFKA_SESSION_TIMEOUT_MS: '10000',
  KAFKA_MAX_MESSAGE_BYTES: '1000000',
  STALL_TIMEOUT_MS: '300000',
  EVENTS_TOPIC: 'blue.events',
  SUBSCRIPTIONS_TOPIC: 'blue.webhooks',
  RESULTS_TOPIC: 'blue.webhook-results',
  DLQ_TOPIC: 'blue.events.dlq',
  SCHEMA_REGISTRY_URL: 'http://127.0.0.1:8081/apis/ccompat/v7',
  REDIS_URL: 'redis://127.0.0.1:6379',
  REDIS_CLUSTER_NODES: '',
  REDIS_KEY_PREFIX: 'bw:',
  SUBSCRIPTION_CACHE_MAX_ENTRIES: '10000',
  SUBSCRIPTION_CACHE_TTL_MS: '60000',
  SUBSCRIPTION_FRESHNESS_TIMEOUT_MS: '5000',
  MAX_IN_FLIGHT_DELIVERIES: '1000',
  MAX_CONNECTIONS_PER_ORIGIN: '32',
  MAX_IDLE_CONNECTIONS: '2048',
  TLS_SESSION_CACHE_SIZE: '10000',
  DNS_CACHE_TTL_MS: '10000',
  DELIVERY_CONNECT_TIMEOUT_MS: '5000',
  DELIVERY_HEADERS_TIMEOUT_MS: '10000',
  DELIVERY_BODY_TIMEOUT_MS: '10000',
  DELIVERY_TIMEOUT_MS: '15000',
  MAX_RESPONSE_BYTES: '65536',
  DELIVERY_ALLOWLIST: '',
  DELIVERY_USER_AGENT: `blue-webhooks/${VERSION}`,
  RETRY_SCHEDULE: '5s,1m,5m,30m,2h,6h,12h,24h',
  RETRY_JITTER: '0.1',
  RETRY_AFTER_MAX_MS: '3600000',
  RETRY_ON_STATUS: '',
  RETRY_TOPIC_PREFIX: 'blue.webhook-retries',
  DELIVERY_DLQ_TOPIC: 'blue.webhook-deliveries.dlq',
  STATUS_TOPIC: 'blue.webhook-status',
  CB_FAILURE_THRESHOLD: '5',
  CB_FAILURE_RATE: '0.5',
  CB_WINDOW_MS: '60000',
  CB_MIN_REQUESTS: '20',
  CB_PROBE_INTERVAL_MS: '30000',
  DISABLE_AFTER: '5d',
  ENDPOINT_MAX_CONCURRENCY: '16',
  ENDPOINT_MAX_QUEUE: '256',
  ENDPOINT_MAX_WAIT_MS: '5000',
  ORDERING_MAX_HELD: '10000',
  OTEL_EXPORTER_OTLP_ENDPOINT: '',
  OTEL_SERVICE_NAME: 'blue-webhooks',
  DELIVERY_LOG: 'on',
  DELIVERY_LOG_MAX_PER_WEBHOOK: '100',
  DELIVERY_LOG_RETENTION: '7d',
  API_TOKEN: '',
  API_PORT: '8080',
  API_HOST: '0.0.0.0',
  API_RATE_LIMIT_PER_SECOND: '50',
  METRICS_PORT: '9464',
  METRICS_HOST: '0.0.0.0',
  SHUTDOWN_GRACE_MS: '20000',
  LOG_LEVEL: 'info',
  INSTANCE_ID: '',
});

export type ConfigVariable = keyof typeof DEFAULTS;

export class ConfigError extends BlueWebhooksError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/**
 * Reads and validates the environment. Never mutates `env`. Throws one ConfigError that lists
 * every bad variable by name with what it expects.
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const raw = (name: ConfigVariable): string => {
    const v = env[name];
    return v === undefined || v === '' ? DEFAULTS[name] : v;
  };
  function read<T>(name: ConfigVariable, parse: (raw: string) => T, fallback: T): T {
    try {
      return parse(raw(name));
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message}`);
      return fallback;
    }
  }
  const int = (name: ConfigVariable, min: number, max: number) =>
    read(name, (s) => parseIntInRange(s, min, max), Number(DEFAULTS[name]));
  const ms = (name: ConfigVariable, min: number, max: number) =>
    read(
      name,
      (s) => {
        // Plain integers are milliseconds; "5s" and friends are accepted too.
        const v = /^\d+$/.test(s.trim()) ? Number(s) : parseDurationMs(s);
        if (v < min || v > max) throw new Error(`expected a duration from ${min} to ${max} ms, got ${v} ms`);
        return v;
      },
      Number(DEFAULTS[name]),
    );
  const topic = (name: ConfigVariable) => read(name, parseTopicName, DEFAULTS[name]);

  const config: Config = {
    kafka: {
      brokers: read('KAFKA_BROKERS', parseBrokers, []),
      clientId: raw('KAFKA_CLIENT_ID'),
      consumerGroup: read('CONSUMER_GROUP', (s) => s.trim() || DEFAULTS.CONSUMER_GROUP, ''),
      topicPartitions: int('TOPIC_PARTITIONS', 1, 10_000),
      topicReplicationFactor: read(
        'TOPIC_REPLICATION_FACTOR',
        (s) => {
          const n = parseIntInRange(s, -1, 32);
          if (n === 0) throw new Error('expected -1 (broker default) or a positive integer, got 0');
          return n;
        },
        -1,
      ),
      partitionsConsumedConcurrently: int('PARTITIONS_CONSUMED_CONCURRENTLY', 1, 1000),
      commitIntervalMs: ms('COMMIT_INTERVAL_MS', 10, 60_000),
      // The broker's default group.min.session.timeout.ms is 6000.
      sessionTimeoutMs: ms('KAFKA_SESSION_TIMEOUT_MS', 6000, 300_000),
      maxMessageBytes: int('KAFKA_MAX_MESSAGE_BYTES', 65_536, 100 * 1024 * 1024),
      stallTimeoutMs: ms('STALL_TIMEOUT_MS', 1000, 86_400_000),
    },
    topics: {
      events: topic('EVENTS_TOPIC'),
      subscriptions: topic('SUBSCRIPTIONS_TOPIC'),
      results: topic('RESULTS_TOPIC'),
      dlq: topic('DLQ_TOPIC'),
    },
    schemaRegistryUrl: read('SCHEMA_REGISTRY_URL', (s) => parseUrl(s, ['http:', 'https:']), ''),
    redis: {
      url: read('REDIS_URL', (s) => parseUrl(s, ['redis:', 'rediss:']), ''),
      clusterNodes: read('REDIS_CLUSTER_NODES', (s) => (s.trim() ? parseBrokers(s) : []), []),
      keyPrefix: read(
        'REDIS_KEY_PREFIX',
        (s) => {
          // A brace would make the prefix a hash tag: on a cluster, every key in one slot.
          if (/[{}]/.test(s))
            throw new Error(`expected no '{' or '}' (they would pin every key to one Redis Cluster slot), got "${s}"`);
          return s;
        },
        DEFAULTS.REDIS_KEY_PREFIX,
      ),
    },
    subscriptions: {
      cacheMaxEntries: int('SUBSCRIPTION_CACHE_MAX_ENTRIES', 0, 10_000_000),
      cacheTtlMs: ms('SUBSCRIPTION_CACHE_TTL_MS', 0, 86_400_000),
      freshnessTimeoutMs: ms('SUBSCRIPTION_FRESHNESS_TIMEOUT_MS', 0, 600_000),
    },
    delivery: {
      maxInFlight: int('MAX_IN_FLIGHT_DELIVERIES', 1, 1_000_000),
      maxConnectionsPerOrigin: int('MAX_CONNECTIONS_PER_ORIGIN', 1, 10_000),
      maxIdleConnections: int('MAX_IDLE_CONNECTIONS', 0, 1_000_000),
      tlsSessionCacheSize: int('TLS_SESSION_CACHE_SIZE', 0, 1_000_000),
      dnsCacheTtlMs: ms('DNS_CACHE_TTL_MS', 0, 3_600_000),
      connectTimeoutMs: ms('DELIVERY_CONNECT_TIMEOUT_MS', 1, 600_000),
      headersTimeoutMs: ms('DELIVERY_HEADERS_TIMEOUT_MS', 1, 600_000),
      bodyTimeoutMs: ms('DELIVERY_BODY_TIMEOUT_MS', 1, 600_000),
      attemptTimeoutMs: ms('DELIVERY_TIMEOUT_MS', 1, 600_000),
      maxResponseBytes: int('MAX_RESPONSE_BYTES', 0, 64 * 1024 * 1024),
      allowlist: read('DELIVERY_ALLOWLIST', parseList, []),
      userAgent: read('DELIVERY_USER_AGENT', parseHeaderValue, DEFAULTS.DELIVERY_USER_AGENT),
    },
    retries: {
      scheduleMs: read('RETRY_SCHEDULE', parseSchedule, []),
      jitter: read('RETRY_JITTER', (s) => parseFraction(s), 0.1),
      retryAfterMaxMs: ms('RETRY_AFTER_MAX_MS', 0, 7 * 86_400_000),
      retryOnStatus: read('RETRY_ON_STATUS', parseStatusList, new Set<number>()),
      topicPrefix: read('RETRY_TOPIC_PREFIX', parseTopicName, DEFAULTS.RETRY_TOPIC_PREFIX),
      dlqTopic: topic('DELIVERY_DLQ_TOPIC'),
    },
    health: {
      statusTopic: topic('STATUS_TOPIC'),
      failureThreshold: int('CB_FAILURE_THRESHOLD', 1, 1_000_000),
      failureRate: read('CB_FAILURE_RATE', (s) => parseFraction(s), 0.5),
      windowMs: ms('CB_WINDOW_MS', 1000, 86_400_000),
      minRequests: int('CB_MIN_REQUESTS', 1, 1_000_000),
      probeIntervalMs: ms('CB_PROBE_INTERVAL_MS', 100, 86_400_000),
      disableAfterMs: read('DISABLE_AFTER', parseDisableAfter, 0),
    },
    isolation: {
      maxConcurrency: int('ENDPOINT_MAX_CONCURRENCY', 1, 10_000),
      maxQueue: int('ENDPOINT_MAX_QUEUE', 0, 1_000_000),
      maxWaitMs: ms('ENDPOINT_MAX_WAIT_MS', 0, 600_000),
    },
    ordering: {
      maxHeld: int('ORDERING_MAX_HELD', 1, 10_000_000),
    },
    tracing: {
      endpoint: read('OTEL_EXPORTER_OTLP_ENDPOINT', (s) => (s === '' ? '' : parseUrl(s, ['http:', 'https:'])), ''),
      serviceName: raw('OTEL_SERVICE_NAME'),
    },
    deliveryLog: {
      mode: read('DELIVERY_LOG', (s) => parseEnum(s, ['on', 'off', 'only'] as const), 'on'),
      maxPerWebhook: int('DELIVERY_LOG_MAX_PER_WEBHOOK', 1, 10_000),
      retentionMs: ms('DELIVERY_LOG_RETENTION', 60_000, 90 * 86_400_000),
    },
    api: {
      token: read('API_TOKEN', parseApiToken, ''),
      port: int('API_PORT', 0, 65_535),
      host: read('API_HOST', parseHost, ''),
      ratePerSecond: int('API_RATE_LIMIT_PER_SECOND', 1, 1_000_000),
    },
    metrics: {
      port: int('METRICS_PORT', 0, 65_535),
      host: read('METRICS_HOST', parseHost, ''),
    },
    shutdownGraceMs: ms('SHUTDOWN_GRACE_MS', 0, 3_600_000),
    logLevel: read('LOG_LEVEL', (s) => parseEnum(s, ['debug', 'info', 'warn', 'error'] as const), 'info'),
    instanceId: raw('INSTANCE_ID') || `${os.hostname()}-${process.pid}`,
  };

  // Cross-field checks name the variables involved.
  const t = config.topics;
  const names: [ConfigVariable, string][] = [
    ['EVENTS_TOPIC', t.events],
    ['SUBSCRIPTIONS_TOPIC', t.subscriptions],
    ['RESULTS_TOPIC', t.results],
    ['DLQ_TOPIC', t.dlq],
    ['DELIVERY_DLQ_TOPIC', config.retries.dlqTopic],
    ['STATUS_TOPIC', config.health.statusTopic],
  ];
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      if (names[i]![1] === names[j]![1]) {
        problems.push(`${names[j]![0]}: must differ from ${names[i]![0]} (both are "${names[i]![1]}")`);
      }
    }
  }
  const d = config.delivery;
  if (d.attemptTimeoutMs < d.connectTimeoutMs) {
    problems.push(
      `DELIVERY_TIMEOUT_MS: must be at least DELIVERY_CONNECT_TIMEOUT_MS (${d.attemptTimeoutMs} < ${d.connectTimeoutMs})`,
    );
  }
  for (const entry of d.allowlist) {
    const problem = allowlistProblem(entry);
    if (problem) problems.push(`DELIVERY_ALLOWLIST: "${entry}": ${problem}`);
  }

  if (d.maxConnectionsPerOrigin < config.isolation.maxConcurrency) {
    problems.push(
      `ENDPOINT_MAX_CONCURRENCY: must not exceed MAX_CONNECTIONS_PER_ORIGIN (${config.isolation.maxConcurrency} > ${d.maxConnectionsPerOrigin})`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

// setTimeout fires at once for a longer delay.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration ("5d", "12h", or plain milliseconds) of at least one second. */
function parseDisableAfter(raw: string): number {
  const v = /^\d+$/.test(raw.trim()) ? Number(raw) : parseDurationMs(raw);
  if (v < 1000 || v > 365 * 86_400_000) throw new Error(`expected a duration from 1s to 365d, got ${v} ms`);
  return v;
}

function parseSchedule(raw: string): number[] {
  if (raw.trim() === 'none') return [];
  const parts = raw.split(',').map((s) => s.trim());
  if (parts.some((p) => p === ''))
    throw new Error(`expected comma-separated durations with none empty, or none, got "${raw}"`);
  const steps = parts.map(parseDurationMs);
  if (steps.length > 50) throw new Error('expected at most 50 retries');
  if (steps.some((s) => s > MAX_TIMER_MS))
    throw new Error(`expected each delay at most ${MAX_TIMER_MS} ms (about 24.8 days)`);
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]! < steps[i - 1]!) throw new Error('expected delays in non-decreasing order');
  }
  if (steps.some((s) => s <= 0)) throw new Error('expected positive delays');
  return steps;
}

function parseFraction(raw: string): number {
  const n = Number(raw);
  if (!/^\s*\d+(\.\d+)?\s*$/.test(raw) || n < 0 || n > 1)
    throw new Error(`expected a decimal number from 0 to 1, got "${raw}"`);
  return n;
}

/** A value that can be sent as an HTTP header: visible ASCII, spaces, tabs; not empty. */
function parseHeaderValue(raw: string): string {
  if (!/^[\x20-\x7e\t]+$/.test(raw))
    throw new Error('expected printable ASCII (no control characters such as CR or LF)');
  return raw;
}

/** A bearer token: empty (API off), or 32 to 512 visible ASCII characters. Messages never quote it. */
function parseApiToken(raw: string): string {
  if (raw === '') return '';
  if (!/^[\x21-\x7e]{32,512}$/.test(raw))
    throw new Error('expected 32 to 512 visible ASCII characters (no spaces), or empty for no API');
  return raw;
}

function parseStatusList(raw: string): Set<number> {
  const codes = parseList(raw).map((s) => parseIntInRange(s, 400, 499));
  return new Set(codes);
}

/** What is wrong with one DELIVERY_ALLOWLIST entry, or null. */
function allowlistProblem(s: string): string | null {
  const [rawAddr, bits, ...rest] = s.split('/');
  const addr = rawAddr?.replace(/^\[(.*)\]$/, '$1');
  if (rest.length > 0 || !addr) return 'expected an address, a CIDR, a host name or *.suffix';
  const family = net.isIP(addr);
  if (bits !== undefined) {
    if (family === 0) return 'a prefix length goes with an IP address, not a host name';
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `expected a prefix length from 0 to ${max}`;
    return null;
  }
  if (family !== 0) return null;
  return /^(\*\.)?[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.?$/.test(addr)
    ? null
    : 'expected an address, a CIDR, a host name or *.suffix';
}

function deepFreeze<T>(value: T): T {
  // Sets cannot be frozen in place; ReadonlySet in the type keeps them read-only.
  if (value && typeof value === 'object' && !(value instanceof Set) && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
