// The circuit breaker against a real Redis (a real Redis Cluster under `npm run test:cluster`):
// what it costs Redis while endpoints are healthy.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import fc from 'fast-check';
import { CircuitBreaker, type CircuitBreakerOptions } from '../../src/breaker/index.js';
import { Metrics } from '../../src/metrics/index.js';
import { bucketOf, bucketPrefix, createLogger, type RedisClient } from '../../src/shared/index.js';
import { testRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/** Counts the commands a client sends, by name (the client is real; this only watches it). */
function watchCommands(redis: RedisClient): Map<string, number> {
  const sent = new Map<string, number>();
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
    sent.set(command.name, (sent.get(command.name) ?? 0) + 1);
    return (send as (...args: unknown[]) => unknown)(command, ...rest);
  }) as typeof redis.sendCommand;
  return sent;
}

/** A started breaker on the test's Redis, stopped when the test ends; `options` over the defaults here. */
async function startedBreaker(
  t: TestContext,
  redis: RedisClient,
  prefix: string,
  options: Partial<CircuitBreakerOptions>,
): Promise<CircuitBreaker> {
  const breaker = new CircuitBreaker({
    redis,
    prefix,
    failureThreshold: 5,
    failureRate: 0.5,
    windowMs: 60_000,
    minRequests: 20,
    probeIntervalMs: 30_000,
    disableAfterMs: 86_400_000,
    onDisableRecommended: async () => {},
    metrics: new Metrics({ defaultMetrics: false }),
    log: createLogger({ level: 'error' }),
    ...options,
  });
  await breaker.start();
  t.after(() => breaker.stop());
  return breaker;
}

test('successes of 1,000 healthy webhooks reach Redis in one call per bucket, not one per webhook', async (t) => {
  // Auto-pipelining on, as the service's client has it: on a cluster it once sent every bucket's
  // call in one pipeline the cluster refused, and no success was counted.
  const { redis, prefix } = testRedis(t, { enableAutoPipelining: true });
  const breaker = await startedBreaker(t, redis, prefix, { refreshMs: 200 });
  // Ids of every shape a webhook id can take, braces included (a brace must not pick the slot).
  const ids = Array.from({ length: 1000 }, (_, i) => (i % 7 === 0 ? `wh_{${i}}` : `wh_${i}`));
  const sent = watchCommands(redis);
  for (const [i, id] of ids.entries()) for (let n = 0; n <= i % 3; n++) assert.equal(breaker.record(id, true), null);
  const hash = (id: string) => `${bucketPrefix(prefix, bucketOf(id))}cb:${id}`;
  await waitFor(async () => Number(await redis.hget(hash(ids.at(-1)!), 'wtotal')) > 0, { what: 'the counts in Redis' });
  await waitFor(
    async () => {
      const totals = await Promise.all(ids.map((id) => redis.hget(hash(id), 'wtotal')));
      return totals.every((total, i) => Number(total) === (i % 3) + 1);
    },
    { what: 'every webhook counted, each with its own count' },
  );
  const buckets = new Set(ids.map(bucketOf)).size;
  const countCalls = (sent.get('evalsha') ?? 0) + (sent.get('eval') ?? 0);
  t.diagnostic(`${ids.length} webhooks in ${buckets} buckets: ${countCalls} script calls`);
  assert.ok(countCalls <= buckets, `${countCalls} script calls for ${buckets} buckets`);
});

test('a replica whose failure finds the circuit open (another replica opened it) holds back at once, not at its next refresh', async (t) => {
  const { redis, prefix } = testRedis(t);
  // No refresh within the test: what a replica knows comes from its own calls.
  const options = { failureThreshold: 3, failureRate: 1, minRequests: 1_000, refreshMs: 3_600_000 };
  const [a, b] = [await startedBreaker(t, redis, prefix, options), await startedBreaker(t, redis, prefix, options)];
  for (let i = 0; i < 3; i++) await a.record('wh_shared', false);
  assert.equal(a.isOpen('wh_shared'), true, 'opened by a');
  assert.equal(b.admit('wh_shared'), 'closed', 'b has not heard yet');
  assert.equal(await b.record('wh_shared', false), null, 'b does not report a transition a made');
  assert.equal(b.isOpen('wh_shared'), true, 'b learnt it from its own failure');
  assert.notEqual(await b.admit('wh_shared'), 'closed');
});

test('any webhook ids (braces, NUL, colons, newlines, any Unicode, 300 characters): each success count lands in its own circuit', async (t) => {
  // As the service's client: auto-pipelining on (on a cluster, the calls of many slots at once).
  const { redis, prefix } = testRedis(t, { enableAutoPipelining: true });
  const piece = fc.oneof(
    fc.constantFrom('{', '}', '{}', ':', '\n', '\u0000', 'cb:open'),
    fc.string({ unit: 'grapheme' }),
  );
  const id = fc.array(piece, { minLength: 1, maxLength: 8 }).map((parts) => parts.join('').slice(0, 300));
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(fc.tuple(id, fc.integer({ min: 1, max: 3 })), {
        minLength: 1,
        maxLength: 40,
        selector: ([webhookId]) => webhookId,
      }),
      async (circuits) => {
        const runPrefix = `${prefix}${run++}:`;
        const breaker = await startedBreaker(t, redis, runPrefix, { refreshMs: 50 });
        for (const [webhookId, n] of circuits) for (let i = 0; i < n; i++) breaker.record(webhookId, true);
        const hash = (webhookId: string) => `${bucketPrefix(runPrefix, bucketOf(webhookId))}cb:${webhookId}`;
        await waitFor(
          async () => {
            const totals = await Promise.all(circuits.map(([webhookId]) => redis.hget(hash(webhookId), 'wtotal')));
            return totals.every((total, i) => Number(total) === circuits[i]![1]);
          },
          { what: 'every count in its own circuit' },
        );
        breaker.stop();
      },
    ),
    { numRuns: 25, seed: 20261205 },
  );
});
