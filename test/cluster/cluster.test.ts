// What only a Redis Cluster can show: the service's keys spread over every master, scripts that
// each stay in one slot whatever the ids hold, and deliveries that go on through a master's death.
// The same matching, table, rebuild and breaker scenarios as on one node run against a cluster
// too (`npm run test:cluster` runs those files with REDIS_CLUSTER_NODES set).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import type { WebhookResult } from '../../src/results/result.js';
import { bucketOf } from '../../src/shared/redis.js';
import { SubscriptionStore } from '../../src/subscriptions/store.js';
import {
  collectTopic,
  createScenario,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { startReceiver } from '../helpers/receiver.js';
import { deleteKeys } from '../helpers/redis.js';
import { type RedisClusterHandle, startRedisCluster } from '../helpers/redis-cluster.js';
import { waitFor } from '../helpers/wait.js';

// A cluster of this file's own: the failover test kills one of its masters.
let cluster: RedisClusterHandle;
before(async () => {
  cluster = await startRedisCluster();
});
after(() => cluster.stop());

test('the table spreads over the three masters, and ids with braces, colons and newlines stay in one slot per script', async (t) => {
  const redis = cluster.client();
  const prefix = `test:spread:${process.pid}:`;
  t.after(async () => {
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });
  const store = new SubscriptionStore(redis, prefix);
  await store.beginBuild('tok');
  assert.ok(await store.markReady('tok'));
  const hostile = ['{', '}', '{x}', 'a}{b', 'p:1:2', 'line\nbreak', 'ünï', ''.padEnd(300, '{')];
  const projects = [...Array.from({ length: 200 }, (_, i) => `proj_${i}`), ...hostile];
  await store.applyAll(
    projects.map((projectId, i) => ({
      change: {
        kind: 'put',
        id: `wh{${i}}`,
        sub: sampleSubscription({ id: `wh{${i}}`, metadata: { events: ['TODO_CREATED'], projectIds: [projectId] } }),
      },
      pos: { partition: 0, offset: i, atMs: 1 },
    })),
  );
  const found = await store.lookup(projects.map((projectId) => ({ projectId, eventType: 'TODO_CREATED' })));
  assert.deepEqual(
    found.map((rows) => rows.map((c) => c.id)),
    projects.map((_, i) => [`wh{${i}}`]),
    'every project finds its webhook',
  );
  assert.equal(await store.liveCount(), projects.length);
  for (const id of ['wh{0}', `wh{${projects.length - 1}}`])
    assert.equal(JSON.parse((await store.get(id))!.json).id, id);

  const perMaster = await cluster.keysPerMaster(prefix);
  const counts = [...perMaster.values()];
  const total = counts.reduce((sum, n) => sum + n, 0);
  t.diagnostic(`keys per master: ${[...perMaster].map(([node, n]) => `${node}=${n}`).join(', ')}`);
  assert.equal(counts.length, 3);
  for (const n of counts)
    assert.ok(n > total / 10, `each master holds a share of the ${total} keys: ${counts.join(', ')}`);

  // A project moving to another bucket leaves the first one.
  const moving = projects.findIndex((p) => bucketOf(p) !== bucketOf('proj_0'));
  await store.applyAll([
    {
      change: {
        kind: 'put',
        id: 'wh{0}',
        sub: sampleSubscription({
          id: 'wh{0}',
          metadata: { events: ['TODO_CREATED'], projectIds: [projects[moving]!] },
        }),
      },
      pos: { partition: 0, offset: 10_000, atMs: 2 },
    },
  ]);
  const [before0, after0] = await store.lookup([
    { projectId: 'proj_0', eventType: 'TODO_CREATED' },
    { projectId: projects[moving]!, eventType: 'TODO_CREATED' },
  ]);
  assert.deepEqual(before0, []);
  assert.deepEqual(after0!.map((c) => c.id).sort(), ['wh{0}', `wh{${moving}}`].sort());
});

test('a master killed (SIGKILL) under load: its replica takes over and every event is still delivered', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  const projectId = 'proj_failover';
  await putSubscription(
    s,
    sampleSubscription({
      id: 'wh_fo',
      url: `${rx.url}/hook`,
      metadata: { events: ['TODO_CREATED'], projectIds: [projectId] },
    }),
  );
  const out = await collectTopic(s, s.topics.results, (v) => s.registry.decode(v!) as Promise<WebhookResult>);
  // No in-process cache: every event is matched in Redis, so the dead master is on the hot path.
  await startDispatcher(s, {
    REDIS_CLUSTER_NODES: cluster.seeds,
    SUBSCRIPTION_CACHE_MAX_ENTRIES: '0',
    RETRY_SCHEDULE: Array(20).fill('500ms').join(','),
  });
  const event = (i: number) => sampleEvent({ eventId: `fo_${i}`, type: 'TODO_CREATED', projectId });
  const delivered = () => new Set(out.filter((r) => r.outcome === 'DELIVERED').map((r) => r.eventId));
  // 100 events, 20 a second, and the master holding this project's bucket (its index, its
  // subscriptions, its ready marker) killed once 20 are delivered.
  const producing = (async () => {
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) {
      await waitFor(() => performance.now() >= t0 + i * 50, { what: `event ${i}'s turn`, intervalMs: 5 });
      await produceEvents(s, [event(i)]);
    }
  })();
  await waitFor(() => delivered().size >= 20, { what: '20 deliveries before the kill' });
  const store = new SubscriptionStore(cluster.client(), s.redisPrefix);
  const beforeKill = delivered().size;
  const killedAt = Date.now();
  const { killed, promoted } = await cluster.killMasterOf(store.indexKey(projectId, 'TODO_CREATED'));
  t.diagnostic(
    `killed ${killed} after ${beforeKill} deliveries; ${promoted} took over ${Date.now() - killedAt} ms later, by when ${delivered().size} were delivered`,
  );
  await producing;
  await waitFor(() => delivered().size === 100, { what: '100 events delivered after the failover', timeoutMs: 60_000 });
  assert.ok(rx.deliveries.length >= 100, 'the receiver got every one');
});
