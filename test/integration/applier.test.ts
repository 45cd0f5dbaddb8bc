// A record Redis refuses ends there: counted, its webhook inert, and the rest of the batch applied.
// Only a connection-level fault waits for the infrastructure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import type { Registry } from '../../src/codec/registry.js';
import { sampleSubscription } from '../../src/demo/sample-data.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/shared/logger.js';
import { bucketOf } from '../../src/shared/redis.js';
import { SubscriptionApplier } from '../../src/subscriptions/applier.js';
import { SubscriptionStore } from '../../src/subscriptions/store.js';
import { SubscriptionTable } from '../../src/subscriptions/table.js';
import { testRedis } from '../helpers/redis.js';

const noRegistry = {} as Registry;

function message(offset: number, id: string, projectId: string): KafkaMessage {
  const sub = sampleSubscription({ id, metadata: { events: ['E'], projectIds: [projectId] } });
  return {
    key: Buffer.from(id),
    value: Buffer.from(JSON.stringify(sub)),
    timestamp: String(Date.now()),
    offset: String(offset),
    attributes: 0,
    headers: {},
  } as KafkaMessage;
}

test('a record Redis refuses (WRONGTYPE) is counted and made inert; the rest of its batch is applied', async (t) => {
  const { redis, prefix } = testRedis(t);
  const store = new SubscriptionStore(redis, prefix);
  await store.beginBuild('tok');
  assert.ok(await store.markReady('tok'));
  const metrics = new Metrics({ defaultMetrics: false });
  const logs: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'warn', write: (line) => logs.push(JSON.parse(line)) });
  const retries: string[] = [];
  const applier = new SubscriptionApplier({
    registry: noRegistry,
    store,
    table: new SubscriptionTable(store, { cacheMaxEntries: 10, cacheTtlMs: 1000 }, metrics),
    metrics,
    log,
    // The app's policy, bounded: a retriable error is retried, but here none should come.
    untilDone: async (fn, what) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn();
        } catch (err) {
          if (!(err as { retriable?: boolean }).retriable || attempt === 5) throw err;
          retries.push(what);
        }
      }
    },
  });
  // A key of the wrong type where the refused record's bucket step writes (what a bug, or an
  // operator's stray SET, leaves behind): Redis answers WRONGTYPE, every time.
  await redis.set(store.bucketKey(bucketOf('proj_refused'), 'ver:refused'), 'not a hash');

  await applier.apply(0, [
    message(0, 'before', 'proj_ok'),
    message(1, 'refused', 'proj_refused'),
    message(2, 'after', 'proj_ok'),
  ]);

  assert.deepEqual(retries, [], 'a refused command is not retried');
  assert.equal(
    await metrics.subscriptionsInvalid
      .get()
      .then((m) => m.values.find((v) => v.labels.reason === 'REDIS_REJECTED')?.value),
    1,
  );
  assert.equal(await store.get('refused'), null, 'the refused webhook is inert');
  assert.deepEqual(
    (await store.lookup([{ projectId: 'proj_ok', eventType: 'E' }]))[0]!.map((c) => c.id).sort(),
    ['after', 'before'],
    'the records around it are applied',
  );
  const line = logs.find((l) => l.code === 'REDIS_REJECTED');
  assert.ok(line, 'logged with its reason');
  assert.equal(line.webhookId, 'refused');
  assert.ok(!JSON.stringify(logs).includes('whsec-demo-secret'));
});
