// The subscription table: changes take effect for later events, cold starts miss nothing, and a
// Redis flush is repaired from the compacted topic.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { SubscriptionStore } from '../../src/subscriptions/store.js';
import { defer } from '../helpers/defer.js';
import {
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { startReceiver } from '../helpers/receiver.js';
import { deleteKeys, serviceRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

test('create, update, update with an older updatedAt, and delete each take effect for the events produced after them', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  const d = await startDispatcher(s);
  const handled = async (n: number) =>
    waitFor(
      async () => {
        const m = parseMetrics(await d.metrics());
        return m.get('blue_webhooks_events_consumed_total') === n && m.get('blue_webhooks_deliveries_in_flight') === 0;
      },
      { what: `${n} events handled` },
    );
  const t0 = Date.now();
  const at = (ms: number) => new Date(t0 + ms).toISOString();

  // Created just before the event: no waiting in between.
  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/v1`, updatedAt: at(0) }));
  await produceEvents(s, [sampleEvent({ eventId: 'a' })]);
  await waitFor(() => rx.at('/v1').length === 1, { what: 'delivery to v1' });

  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/v2`, updatedAt: at(1000) }));
  await produceEvents(s, [sampleEvent({ eventId: 'b' })]);
  await waitFor(() => rx.at('/v2').length === 1, { what: 'delivery to v2' });

  // A later record wins whatever its updatedAt says: the topic's order decides, not a producer's clock.
  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/v3`, updatedAt: at(500) }));
  await produceEvents(s, [sampleEvent({ eventId: 'c' })]);
  await waitFor(() => rx.at('/v3').length === 1, { what: 'delivery to v3' });

  await putSubscription(s, { id: 'wh', value: null });
  await produceEvents(s, [sampleEvent({ eventId: 'd' })]);
  await handled(4);
  assert.deepEqual(
    rx.deliveries.map((r) => r.path),
    ['/v1', '/v2', '/v3'],
  );
});

test('a replica started cold delivers to a webhook created before its events', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'early', url: `${rx.url}/early` }));
  await produceEvents(
    s,
    Array.from({ length: 20 }, (_, i) => sampleEvent({ eventId: `cold_${i}` })),
  );
  const d = await startDispatcher(s);
  await waitFor(() => rx.deliveries.length === 20, { what: '20 deliveries' });
  assert.equal((await d.readyz()).status, 200);
});

test('a flushed table is rebuilt from the topic and deliveries go on', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_1', url: `${rx.url}/one` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_2', url: `${rx.url}/two` }));
  const d = await startDispatcher(s);
  await produceEvents(s, [sampleEvent({ eventId: 'before' })]);
  await waitFor(() => rx.deliveries.length === 2, { what: 'deliveries before the flush' });

  // Flush this test's keys (the machine's Redis is shared, so not FLUSHALL).
  const redis = serviceRedis();
  defer(t, () => redis.quit());
  assert.ok((await deleteKeys(redis, s.redisPrefix)) > 0);
  await produceEvents(s, [sampleEvent({ eventId: 'after' })]);
  await waitFor(() => rx.deliveries.length === 4, { what: 'deliveries after the flush' });
  await waitFor(() => d.logs.some((l) => String(l.msg).includes('rebuilding')), { what: 'the rebuild log line' });
  const store = new SubscriptionStore(redis, s.redisPrefix);
  await waitFor(() => store.isMarkedReady(), { what: 'the table marked complete again' });
  assert.equal(await store.liveCount(), 2, 'both subscriptions are back');
  // A new subscription after the rebuild is picked up as usual.
  await putSubscription(s, sampleSubscription({ id: 'wh_3', url: `${rx.url}/three` }));
  await produceEvents(s, [sampleEvent({ eventId: 'later' })]);
  await waitFor(() => rx.at('/three').length === 1, { what: 'delivery to the new subscription' });
});
