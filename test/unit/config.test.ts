import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, DEFAULTS, loadConfig } from '../../src/config/config.js';

test('defaults point at the local stack and name the contract topics', () => {
  const c = loadConfig({});
  assert.deepEqual(c.kafka.brokers, ['127.0.0.1:9092']);
  assert.equal(c.schemaRegistryUrl, 'http://127.0.0.1:8081/apis/ccompat/v7');
  assert.equal(c.redis.url, 'redis://127.0.0.1:6379');
  assert.deepEqual(c.topics, {
    events: 'blue.events',
    subscriptions: 'blue.webhooks',
    results: 'blue.webhook-results',
    dlq: 'blue.events.dlq',
  });
  assert.equal(c.kafka.consumerGroup, 'blue-webhooks');
  assert.equal(c.metrics.port, 9464);
  assert.deepEqual(c.delivery.allowlist, []);
});

test('the result is frozen all the way down, and the environment is not touched', () => {
  const env = Object.freeze({ KAFKA_BROKERS: 'a:1,b:2', DELIVERY_ALLOWLIST: '10.0.0.0/8, localhost' });
  const c = loadConfig(env);
  assert.deepEqual(c.kafka.brokers, ['a:1', 'b:2']);
  assert.deepEqual(c.delivery.allowlist, ['10.0.0.0/8', 'localhost']);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.kafka) && Object.isFrozen(c.kafka.brokers));
  assert.throws(() => {
    (c.kafka as { consumerGroup: string }).consumerGroup = 'x';
  });
});

test('durations accept plain milliseconds and units', () => {
  assert.equal(loadConfig({ DELIVERY_TIMEOUT_MS: '20s' }).delivery.attemptTimeoutMs, 20_000);
  assert.equal(loadConfig({ SHUTDOWN_GRACE_MS: '1500' }).shutdownGraceMs, 1500);
});

test('every bad variable is named, with what it expects, in one error', () => {
  const bad = {
    KAFKA_BROKERS: 'no-port',
    METRICS_PORT: '99999',
    MAX_IN_FLIGHT_DELIVERIES: 'lots',
    SCHEMA_REGISTRY_URL: 'ftp://x',
    REDIS_URL: 'not a url',
    EVENTS_TOPIC: 'bad topic!',
    LOG_LEVEL: 'loud',
    DELIVERY_ALLOWLIST: 'ok.example,bad/host/x',
    DISABLE_AFTER: '500ms',
    ORDERING_MAX_HELD: '0',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://collector',
    MAX_IDLE_CONNECTIONS: '-1',
    TLS_SESSION_CACHE_SIZE: '1e9\u0000',
    DNS_CACHE_TTL_MS: '\ud800',
    DELIVERY_LOG: 'yes',
    DELIVERY_LOG_MAX_PER_WEBHOOK: '0',
    DELIVERY_LOG_RETENTION: '1s',
    API_TOKEN: 'short-token-never-quoted',
    API_PORT: '70000',
    API_HOST: 'not a host',
    API_RATE_LIMIT_PER_SECOND: '0',
  };
  let err: unknown;
  try {
    loadConfig(bad);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError);
  for (const name of Object.keys(bad)) {
    assert.ok(
      err.problems.some((p) => p.startsWith(`${name}:`)),
      `${name} is named`,
    );
  }
  assert.match(err.message, /METRICS_PORT: expected an integer from 0 to 65535, got 99999/);
  assert.ok(!err.message.includes('short-token-never-quoted'), 'a bad API_TOKEN is never echoed');
  for (const token of ['x'.repeat(31), `${'x'.repeat(40)} y`, `${'x'.repeat(40)}\u00e9`, 'x'.repeat(513)]) {
    assert.throws(() => loadConfig({ API_TOKEN: token }), /API_TOKEN: expected 32 to 512 visible ASCII/);
  }
  const api = loadConfig({ API_TOKEN: 'k'.repeat(32), DELIVERY_LOG: 'only', DELIVERY_LOG_RETENTION: '2d' });
  assert.deepEqual(
    [api.api.token.length, api.deliveryLog.mode, api.deliveryLog.retentionMs],
    [32, 'only', 172_800_000],
  );
  assert.match(err.message, /DISABLE_AFTER: expected a duration from 1s to 365d, got 500 ms/);
  for (const disableAfter of ['five days', '-1d', '1e9d']) {
    assert.throws(() => loadConfig({ DISABLE_AFTER: disableAfter }), /DISABLE_AFTER:/, disableAfter);
  }
  assert.equal(loadConfig({ DISABLE_AFTER: '12h' }).health.disableAfterMs, 43_200_000);
});

test('cross-field checks name the variables involved', () => {
  assert.throws(() => loadConfig({ RESULTS_TOPIC: 'blue.events' }), /RESULTS_TOPIC: must differ from EVENTS_TOPIC/);
  assert.throws(
    () => loadConfig({ DELIVERY_TIMEOUT_MS: '1000', DELIVERY_CONNECT_TIMEOUT_MS: '5000' }),
    /DELIVERY_TIMEOUT_MS: must be at least DELIVERY_CONNECT_TIMEOUT_MS/,
  );
});

test('every default parses', () => {
  assert.doesNotThrow(() => loadConfig({ ...DEFAULTS }));
});

test('Redis Cluster seeds are host:port pairs; none means one node; a key prefix may not be a hash tag; credentials must decode', () => {
  assert.deepEqual(loadConfig({}).redis.clusterNodes, []);
  assert.deepEqual(loadConfig({ REDIS_CLUSTER_NODES: ' 10.0.0.1:7000, [::1]:7001 ' }).redis.clusterNodes, [
    '10.0.0.1:7000',
    '[::1]:7001',
  ]);
  assert.equal(
    loadConfig({ REDIS_URL: 'redis://user:p%40ss@10.0.0.1:6379' }).redis.url,
    'redis://user:p%40ss@10.0.0.1:6379',
  );
  for (const bad of [
    { REDIS_CLUSTER_NODES: 'redis-0' },
    { REDIS_CLUSTER_NODES: 'a:1,b' },
    { REDIS_KEY_PREFIX: 'bw:{x}:' },
    { REDIS_KEY_PREFIX: 'a}' },
    { REDIS_URL: 'redis://u:%zz@h:6379' },
    { SCHEMA_REGISTRY_URL: 'https://key:%E0%A4%A@registry.example/' },
  ]) {
    assert.throws(
      () => loadConfig(bad),
      (err: Error) => err instanceof ConfigError && err.message.includes(Object.keys(bad)[0]!),
      JSON.stringify(bad),
    );
  }
  assert.equal(loadConfig({}).redis.keyPrefix, 'bw:');
  // A password in a value that does not parse is not echoed in the error.
  assert.throws(
    () => loadConfig({ REDIS_URL: 'redis//user:hunter2@h:6379' }),
    (err: Error) => err.message.includes('REDIS_URL') && !err.message.includes('hunter2'),
  );
});

test('hosts and ports are checked where they are read: a port in range, a host that is a name or an address', () => {
  for (const [name, value, message] of [
    ['KAFKA_BROKERS', 'h:99999', /KAFKA_BROKERS: expected a port from 1 to 65535, got 99999/],
    ['KAFKA_BROKERS', 'h:0', /KAFKA_BROKERS: expected a port from 1 to 65535/],
    ['KAFKA_BROKERS', '[zz]:1', /KAFKA_BROKERS: expected an IPv6 address in brackets, got "\[zz\]"/],
    ['KAFKA_BROKERS', 'bad_host!:9092', /KAFKA_BROKERS: expected a host name or an IP address/],
    ['REDIS_CLUSTER_NODES', '127.0.0.1:70000', /REDIS_CLUSTER_NODES: expected a port from 1 to 65535/],
    [
      'METRICS_HOST',
      '0.0.0.0\nX-Injected: 1',
      /METRICS_HOST: expected a host name or an IP address, got "0.0.0.0\\nX-Injected: 1"/,
    ],
    ['METRICS_HOST', 'two words', /METRICS_HOST: expected a host name or an IP address/],
  ] as const) {
    assert.throws(() => loadConfig({ [name]: value }), message, `${name}=${JSON.stringify(value)}`);
  }
  for (const brokers of ['kafka-0.kafka.svc:9092', '[::1]:9092', '10.0.0.1:1,b_1.example:65535'])
    assert.deepEqual(loadConfig({ KAFKA_BROKERS: brokers }).kafka.brokers, brokers.split(','));
  for (const host of ['::', '127.0.0.1', 'metrics.internal', 'localhost'])
    assert.equal(loadConfig({ METRICS_HOST: host }).metrics.host, host);
});
