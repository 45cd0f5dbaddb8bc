// The entity lines in Redis, step by step, including the steps a crash can interrupt; and the
// rate limiter's schedule shared by several clients.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { RateLimiter } from '../../src/delivery/rate-limit.js';
import { EntityOrder, entityOf } from '../../src/ordering/entity-order.js';
import { stackEnv } from '../helpers/env.js';
import { testRedis } from '../helpers/redis.js';

const key = { webhookId: 'wh_1', entity: entityOf(Buffer.from('todo_1'))! };

test('a line: free while empty; a failure makes its delivery first; later ones wait, in order, and go when released', async (t) => {
  const { redis, prefix } = testRedis(t);
  const order = new EntityOrder(redis, prefix, 3);
  assert.deepEqual(
    await order.admit(key, 'd1', 'rec1'),
    { status: 'free', undriven: null },
    'nothing waits: d1 goes now',
  );
  // d1 failed: it takes the first place; its retry record is not written yet, so the line says so.
  assert.deepEqual(await order.hold(key, 'd1', 'rec1-retry'), { status: 'head', undriven: 'rec1-retry' });
  await order.markDriven(key, 'd1');
  assert.deepEqual(await order.admit(key, 'd2', 'rec2'), { status: 'held', undriven: null });
  assert.deepEqual(await order.admit(key, 'd3', 'rec3'), { status: 'held', undriven: null });
  assert.deepEqual(
    await order.admit(key, 'd2', 'rec2'),
    { status: 'present', undriven: null },
    'a replay adds nothing',
  );
  assert.deepEqual(await order.admit(key, 'd4', 'rec4'), { status: 'full', undriven: null }, 'at most 3 in a line');
  assert.deepEqual(
    await order.admit({ ...key, entity: entityOf(Buffer.from('todo_2'))! }, 'e1', 'x'),
    { status: 'free', undriven: null },
    'other entities are never held',
  );
  // d1's retry record runs: it is first; d2's is not (a copy written twice finds its turn not come).
  assert.deepEqual(await order.turn(key, 'd1'), { turn: { role: 'head' }, undriven: null });
  assert.deepEqual(await order.turn(key, 'd2'), { turn: { role: 'stale' }, undriven: null });
  // d1 delivered: released; d2 is first, and d1's retry record goes on with it.
  assert.equal(await order.release(key, 'd1', 'd1'), 'rec2');
  assert.equal(await order.release(key, 'd1', 'd1'), null, 'releasing twice does nothing');
  assert.equal(await order.release(key, 'd2', 'd1'), 'rec3');
  // d3 fails: it holds the line with a retry record of its own; d1's is done with it.
  assert.deepEqual(await order.hold(key, 'd3', 'rec3-retry'), { status: 'head', undriven: null });
  await order.markDriven(key, 'd3');
  assert.deepEqual(await order.turn(key, 'd1'), { turn: { role: 'stale' }, undriven: null });
  assert.deepEqual(await order.turn(key, 'd3'), { turn: { role: 'head' }, undriven: null });
  assert.equal(await order.release(key, 'd3', 'd3'), null, 'the last one empties the line');
  assert.equal(
    await redis.exists(`${prefix}order:{wh_1\n${key.entity}}:q`, `${prefix}order:{wh_1\n${key.entity}}:r`),
    0,
    'an empty line leaves no key',
  );
  assert.deepEqual(await order.admit(key, 'd5', 'rec5'), { status: 'free', undriven: null });
});

test('crashes between steps: the interrupted retry record goes on where it was; a line left without a driver is repaired', async (t) => {
  const { redis, prefix } = testRedis(t);
  const order = new EntityOrder(redis, prefix, 100);
  await order.hold(key, 'd1', 'rec1');
  await order.markDriven(key, 'd1');
  await order.admit(key, 'd2', 'rec2');
  assert.equal(await order.release(key, 'd1', 'd1'), 'rec2');
  // ...crash while d1's record went on with d2. Read again, d1's record learns it drives d2:
  assert.deepEqual(await order.turn(key, 'd1'), { turn: { role: 'drives', record: 'rec2' }, undriven: null });
  assert.deepEqual(
    await order.admit(key, 'd3', 'rec3'),
    { status: 'held', undriven: null },
    'driven: nothing to repair',
  );
  // A failure after hold and before its retry record: the event, read again, finds itself first and undriven.
  const other = { ...key, entity: entityOf(Buffer.from('todo_9'))! };
  assert.deepEqual(await order.hold(other, 'f1', 'recf1'), { status: 'head', undriven: 'recf1' });
  assert.deepEqual(await order.admit(other, 'f1', 'recf1'), { status: 'head', undriven: 'recf1' });
  assert.deepEqual(
    await order.admit(other, 'f2', 'recf2'),
    { status: 'held', undriven: 'recf1' },
    'a later event sees it too',
  );
  assert.deepEqual(await order.turn(other, 'zz'), { turn: { role: 'stale' }, undriven: 'recf1' });
  await order.markDriven(other, 'f1');
  assert.deepEqual(
    await order.admit(other, 'f3', 'recf3'),
    { status: 'held', undriven: null },
    'repaired once written',
  );
});

test('entity digests: any key bytes, fixed length; no key, no entity', () => {
  assert.equal(entityOf(null), null);
  assert.equal(entityOf(Buffer.alloc(0)), null);
  const long = entityOf(Buffer.alloc(1_000_000, 0xff))!;
  assert.equal(long.length, 22);
  assert.notEqual(entityOf(Buffer.from('a')), entityOf(Buffer.from('b')));
});

test('rate limiter: clients sharing one Redis share one schedule; a slot too far ahead is deferred without being taken', async (t) => {
  const { redis, prefix } = testRedis(t);
  const second = new Redis(stackEnv().REDIS_URL);
  t.after(() => second.disconnect());
  const limiters = [new RateLimiter(redis, prefix, 1000), new RateLimiter(second, prefix, 1000)];
  // Redis's clock places each slot at some moment between the call and its reply, plus the wait.
  // So the widest a gap between two slots can be is (this reply + its wait) - (the previous call
  // + its wait): a correct limiter never brings that under 50 ms, however slow the machine, while
  // two calls given the same slot show a gap of about two round trips.
  const slots: { earliest: number; latest: number }[] = [];
  const decisions = [];
  for (let i = 0; i < 30; i++) {
    const sent = performance.now();
    const decision = await limiters[i % 2]!.reserve('wh', 20);
    decisions.push(decision);
    if ('waitMs' in decision)
      slots.push({ earliest: sent + decision.waitMs, latest: performance.now() + decision.waitMs });
  }
  // 20/s is one slot per 50 ms: 1000 ms of waiting holds 21 slots (0, 50, ..., 1000 ms).
  assert.equal(slots.length, 21, `${slots.length} slots taken within the longest wait`);
  for (let i = 1; i < slots.length; i++) {
    const widest = slots[i]!.latest - slots[i - 1]!.earliest;
    // 1 ms for the rounding up of each wait to whole ms.
    assert.ok(widest >= 49, `slots ${i - 1} and ${i} are at most ${widest} ms apart`);
  }
  const deferred = decisions.filter((d) => 'deferMs' in d) as { deferMs: number }[];
  assert.equal(deferred.length, 9);
  assert.ok(
    deferred.every((d) => d.deferMs > 1000 && d.deferMs <= 1100),
    'deferred to when the next free slot comes',
  );
  assert.ok('waitMs' in (await limiters[0]!.reserve('other', 20)), 'each webhook has its own schedule');
});
