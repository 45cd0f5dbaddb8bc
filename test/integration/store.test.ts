// The Redis table's ordering rules, applied directly: replays and older records never win.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { Cluster } from 'ioredis';
import { sampleSubscription } from '../../src/demo/sample-data.js';
import { Metrics } from '../../src/metrics/index.js';
import { bucketOf, type RedisClient } from '../../src/shared/redis.js';
import { type PlacedChange, SubscriptionStore, type TableChange } from '../../src/subscriptions/store.js';
import { candidateKey, SubscriptionTable } from '../../src/subscriptions/table.js';
import { testRedis } from '../helpers/redis.js';

/** A store on its own key prefix, built and marked complete. */
async function readyStore(t: TestContext) {
  const { redis, prefix } = testRedis(t);
  const store = new SubscriptionStore(redis, prefix);
  await store.beginBuild('tok');
  assert.ok(await store.markReady('tok'));
  return { redis, store };
}

test('the topic decides: a later record in its partition wins whatever its updatedAt; replays never do', async (t) => {
  const { store } = await readyStore(t);
  const put = (url: string, updatedAt: number): TableChange => ({
    kind: 'put',
    id: 'wh',
    sub: sampleSubscription({
      id: 'wh',
      url,
      updatedAt: new Date(updatedAt).toISOString(),
      metadata: { events: ['E'], projectIds: ['P'] },
    }),
  });
  const apply = async (change: TableChange, offset: number, atMs: number, partition = 0) =>
    (await store.applyAll([{ change, pos: { partition, offset, atMs } }]))[0]!.applied;
  const current = async () => {
    const stored = await store.get('wh');
    return stored === null ? null : (JSON.parse(stored.json) as { url: string }).url;
  };
  const candidates = async () => (await store.lookup([{ projectId: 'P', eventType: 'E' }]))[0]!.length;

  const future = Date.parse('9999-12-31T23:59:59.999Z');
  assert.ok(await apply(put('http://future/', future), 1, future));
  assert.ok(await apply(put('http://a/', 5_000), 2, 5_000), 'a later offset wins over a future updatedAt');
  assert.equal(await current(), 'http://a/');
  assert.ok(await apply({ kind: 'delete', id: 'wh' }, 3, 1), 'a tombstone applies whatever its timestamp');
  assert.equal(await current(), null);
  assert.equal(await candidates(), 0, 'and leaves the index');
  assert.ok(!(await apply(put('http://a/', 10_000), 2, 10_000)), 'a replay of an earlier offset is skipped');
  assert.equal(await current(), null);
  assert.ok(await apply(put('http://b/', 1), 4, 1), 'a later record re-creates it at once, whatever its date');
  assert.equal(await current(), 'http://b/');
  assert.equal(await candidates(), 1);
  assert.ok(
    await apply({ kind: 'inert', id: 'wh', reason: 'INVALID_FILTER: x' }, 5, 1),
    'an unusable record makes it inert',
  );
  assert.equal(await current(), null);
  assert.equal(await store.liveCount(), 0);

  // Another partition (the topic gained partitions): the later time wins, the higher partition on a tie.
  assert.ok(await apply(put('http://p1/', 20_000), 0, 20_000, 1), 'newer, from another partition');
  assert.ok(!(await apply(put('http://old-p0/', 15_000), 6, 15_000, 0)), 'older, from another partition');
  assert.ok(!(await apply(put('http://tie-p0/', 20_000), 7, 20_000, 0)), 'a tie goes to the higher partition');
  assert.equal(await current(), 'http://p1/');
  assert.equal(await candidates(), 1);
});

test('lookups refuse to answer while the table is not marked complete', async (t) => {
  const { redis, prefix } = testRedis(t);
  const store = new SubscriptionStore(redis, prefix);
  await assert.rejects(
    store.lookup([{ projectId: 'P', eventType: 'E' }]),
    (e: { code: string }) => e.code === 'TABLE_NOT_READY',
  );
  await assert.rejects(
    store.get('wh'),
    (e: { code: string; retriable: boolean }) => e.code === 'TABLE_NOT_READY' && e.retriable,
  );
  await store.beginBuild('t1');
  await redis.del(store.bucketKey(17, 'building:t1')); // what a flush of one master during the build does
  assert.equal(await store.markReady('t1'), false, 'a build that lost its writes is not marked complete');
});

test('a change applied halfway (home written, a bucket step lost) is finished by the next pass over the same record', async (t) => {
  const { redis, store } = await readyStore(t);
  // Two projects in different buckets: moving the webhook from one to the other touches both.
  const from = 'proj_a';
  const to = Array.from({ length: 100 }, (_, i) => `proj_${i}`).find((p) => bucketOf(p) !== bucketOf(from))!;
  const put = (projectId: string, offset: number) => [
    {
      change: {
        kind: 'put',
        id: 'wh',
        sub: sampleSubscription({
          id: 'wh',
          updatedAt: new Date(offset).toISOString(),
          metadata: { events: ['E'], projectIds: [projectId] },
        }),
      } as TableChange,
      pos: { partition: 0, offset, atMs: offset },
    },
  ];
  const ids = async (projectId: string) => (await store.lookup([{ projectId, eventType: 'E' }]))[0]!.map((c) => c.id);
  await store.applyAll(put(from, 1));
  assert.deepEqual(await ids(from), ['wh']);

  // The replica dies between the two steps: here, every bucket step of this pass fails.
  const bucketStep = (redis as unknown as { subsApplyBucket: unknown }).subsApplyBucket;
  Object.assign(redis, { subsApplyBucket: () => Promise.reject(new Error('connection lost')) });
  await assert.rejects(store.applyAll(put(to, 2)), (err: { code: string }) => err.code === 'REDIS_UNAVAILABLE');
  Object.assign(redis, { subsApplyBucket: bucketStep });
  assert.deepEqual(await ids(from), ['wh'], 'halfway: the old bucket still names it');

  // The same record again (a retry, or another replica's pass): the bucket steps are redone.
  const [again] = await store.applyAll(put(to, 2));
  assert.equal(again!.applied, false, 'not applied twice at its home');
  assert.deepEqual(await ids(from), [], 'the old project no longer matches');
  assert.deepEqual(await ids(to), ['wh'], 'the new one does');
});

/** Bytes Redis reports for every key under `prefix` (MEMORY USAGE, every element counted). */
async function bytesUnder(redis: RedisClient, prefix: string): Promise<number> {
  let total = 0;
  for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) total += (await node.memory('USAGE', key, 'SAMPLES', 0)) ?? 0;
    } while (cursor !== '0');
  }
  return total;
}

test("a subscription's JSON is kept once: 236 KB with 64 projects in 64 buckets costs Redis about its size, not 64 times it", async (t) => {
  const { redis, store } = await readyStore(t);
  const projectIds: string[] = [];
  const buckets = new Set<number>();
  for (let i = 0; buckets.size < 64; i++) {
    if (buckets.has(bucketOf(`proj_${i}`))) continue;
    buckets.add(bucketOf(`proj_${i}`));
    projectIds.push(`proj_${i}`);
  }
  const sub = sampleSubscription({
    id: 'wide',
    name: 'n'.repeat(236_000),
    metadata: { events: ['TODO_CREATED'], projectIds },
  });
  const jsonBytes = Buffer.byteLength(JSON.stringify(sub));
  const before = await bytesUnder(redis, store.prefix);
  await store.applyAll([{ change: { kind: 'put', id: 'wide', sub }, pos: { partition: 0, offset: 1, atMs: 1 } }]);
  const cost = (await bytesUnder(redis, store.prefix)) - before;
  t.diagnostic(`${jsonBytes} bytes of JSON cost ${cost} bytes in Redis (${(cost / jsonBytes).toFixed(2)}×)`);
  assert.ok(cost < 2 * jsonBytes, `${cost} bytes for ${jsonBytes} bytes of JSON`);
  const found = await store.lookup(projectIds.map((projectId) => ({ projectId, eventType: 'TODO_CREATED' })));
  assert.ok(
    found.every((row) => row.length === 1 && row[0]!.id === 'wide'),
    'every project still finds it',
  );
});

test('a replica reads a webhook from its home only for a version it has not compiled, and uses the home when a bucket lags', async (t) => {
  const { redis, store } = await readyStore(t);
  const homeReads: string[] = [];
  const get = store.get.bind(store);
  store.get = (id) => {
    homeReads.push(id);
    return get(id);
  };
  const table = new SubscriptionTable(
    store,
    { cacheMaxEntries: 0, cacheTtlMs: 0 },
    new Metrics({ defaultMetrics: false }),
  );
  const put = (id: string, url: string, offset: number): PlacedChange => ({
    change: { kind: 'put', id, sub: sampleSubscription({ id, url, metadata: { events: ['E'], projectIds: ['P'] } }) },
    pos: { partition: 0, offset, atMs: offset },
  });
  const urls = async () =>
    (await table.candidates([{ projectId: 'P', eventType: 'E' }]))
      .get(candidateKey('P', 'E'))!
      .map((a) => `${a.sub.id} ${a.sub.url}`)
      .sort();

  await store.applyAll([put('a', 'http://a1/', 1), put('b', 'http://b1/', 2)]);
  assert.deepEqual(await urls(), ['a http://a1/', 'b http://b1/']);
  assert.deepEqual(homeReads.sort(), ['a', 'b'], 'first sight: both read from their homes');

  homeReads.length = 0;
  await store.applyAll([put('a', 'http://a2/', 3)]);
  assert.deepEqual(await urls(), ['a http://a2/', 'b http://b1/']);
  assert.deepEqual(homeReads, ['a'], 'only the changed one is read again');

  // Its bucket step lost (the replica died between the two steps): the bucket still indexes
  // version 3, the home holds version 4. What has version 3 compiled uses it until the step is
  // redone; a replica that has not reads the home, and uses version 4.
  const bucketStep = (redis as unknown as { subsApplyBucket: unknown }).subsApplyBucket;
  Object.assign(redis, { subsApplyBucket: () => Promise.reject(new Error('connection lost')) });
  await assert.rejects(store.applyAll([put('a', 'http://a3/', 4)]));
  Object.assign(redis, { subsApplyBucket: bucketStep });
  assert.deepEqual(await urls(), ['a http://a2/', 'b http://b1/']);
  const cold = new SubscriptionTable(
    store,
    { cacheMaxEntries: 0, cacheTtlMs: 0 },
    new Metrics({ defaultMetrics: false }),
  );
  const coldUrls = await cold.candidates([{ projectId: 'P', eventType: 'E' }]);
  assert.deepEqual(
    coldUrls
      .get(candidateKey('P', 'E'))!
      .map((a) => `${a.sub.id} ${a.sub.url}`)
      .sort(),
    ['a http://a3/', 'b http://b1/'],
  );
  await store.applyAll([put('a', 'http://a3/', 4)]);
  assert.deepEqual(await urls(), ['a http://a3/', 'b http://b1/'], 'once the step is redone');
});
