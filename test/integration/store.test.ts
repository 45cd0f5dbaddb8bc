// The Redis table's ordering rules, applied directly: replays and older records never win.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleSubscription } from '../../src/demo/sample-data.js';
import { bucketOf } from '../../src/shared/redis.js';
import { SubscriptionStore, type TableChange } from '../../src/subscriptions/store.js';
import { testRedis } from '../helpers/redis.js';

test('replays, out-of-order puts and stale puts after a delete never overwrite newer state', async (t) => {
  const { redis, prefix } = testRedis(t);
  const store = new SubscriptionStore(redis, prefix);
  await store.beginBuild('tok');
  assert.ok(await store.markReady('tok'));
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
  const apply = async (change: TableChange, offset: number, updatedAtMs: number, partition = 0) =>
    (await store.applyAll([{ change, pos: { partition, offset, updatedAtMs } }]))[0]!.applied;
  const current = async () => {
    const json = await store.get('wh');
    return json === null ? null : (JSON.parse(json) as { url: string }).url;
  };
  const candidates = async () => (await store.lookup([{ projectId: 'P', eventType: 'E' }]))[0]!.length;

  assert.ok(await apply(put('http://a/', 10_000), 1, 10_000));
  assert.equal(await current(), 'http://a/');
  assert.ok(!(await apply(put('http://stale/', 5_000), 2, 5_000)), 'an older updatedAt at a later offset is skipped');
  assert.equal(await current(), 'http://a/');
  assert.ok(await apply({ kind: 'delete', id: 'wh' }, 3, 1), 'a tombstone applies whatever its timestamp');
  assert.equal(await current(), null);
  assert.equal(await candidates(), 0, 'and leaves the index');
  assert.ok(!(await apply(put('http://zombie/', 8_000), 4, 8_000)), 'an older put cannot bring it back');
  assert.ok(!(await apply(put('http://a/', 10_000), 1, 10_000)), 'a replay of an earlier offset is skipped');
  assert.equal(await current(), null);
  assert.ok(await apply(put('http://b/', 20_000), 5, 20_000), 'a newer record re-creates it');
  assert.equal(await current(), 'http://b/');
  assert.equal(await candidates(), 1);
  assert.ok(
    await apply({ kind: 'inert', id: 'wh', reason: 'INVALID_FILTER: x' }, 6, 1),
    'an unusable record makes it inert',
  );
  assert.equal(await current(), null);
  assert.equal(await store.liveCount(), 0);
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
  const { redis, prefix } = testRedis(t);
  const store = new SubscriptionStore(redis, prefix);
  await store.beginBuild('tok');
  assert.ok(await store.markReady('tok'));
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
      pos: { partition: 0, offset, updatedAtMs: offset },
    },
  ];
  const ids = async (projectId: string) =>
    (await store.lookup([{ projectId, eventType: 'E' }]))[0]!.map((json) => JSON.parse(json).id);
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
