// The endpoint gate: isolation between endpoints, and backpressure for bursts (pure logic, a fake clock).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EndpointGate } from '../../src/delivery/endpoint-gate.js';

function gateWithClock(o: {
  maxConcurrency: number;
  maxQueue: number;
  maxWaitMs: number;
  idleLaneMs?: number;
  ownDelayMs?: () => number;
}) {
  const clock = { now: 0 };
  return { gate: new EndpointGate({ ...o, now: () => clock.now }), clock };
}

const settled = async (p: unknown) => {
  let done = false;
  void Promise.resolve(p).then(() => {
    done = true;
  });
  await new Promise((r) => setImmediate(r));
  return done;
};

test('the gate admits up to the cap, queues up to the bound, and hands slots over in order', async () => {
  const { gate } = gateWithClock({ maxConcurrency: 2, maxQueue: 1, maxWaitMs: 1000 });
  assert.equal(gate.enter('a'), 'entered');
  assert.equal(gate.enter('a'), 'entered');
  const first = gate.enter('a');
  const second = gate.enter('a');
  assert.ok(first instanceof Promise && second instanceof Promise);
  assert.equal(gate.enter('b'), 'entered', 'other endpoints are unaffected');
  gate.release('a', 5);
  assert.equal(await first, 'entered');
  assert.equal(await settled(second), false, 'the second waits for the next slot');
  assert.deepEqual(gate.load('a'), { active: 2, waiting: 1, limit: 2 });
  gate.release('a', 5);
  assert.equal(await second, 'entered');
  gate.release('a', 5);
  gate.release('a', 5);
  assert.deepEqual(gate.load('a'), { active: 0, waiting: 0, limit: 2 });
});

test('a cold endpoint is on probation: a burst waits for room while it is young, not after it stays silent', async () => {
  const { gate, clock } = gateWithClock({ maxConcurrency: 2, maxQueue: 2, maxWaitMs: 1000 });
  for (let i = 0; i < 2; i++) assert.equal(gate.enter('cold'), 'entered');
  const queued = [gate.enter('cold'), gate.enter('cold')];
  // The queue is full; nothing completed yet, but the endpoint became busy only now.
  const room = gate.waitForRoom('cold');
  assert.ok(room instanceof Promise, 'a burst to a cold endpoint waits for room: backpressure, not diversion');
  gate.release('cold', 3);
  await room;
  await Promise.all(queued.slice(0, 1));
  // Silent for 2 s since its last completion: (queue 2 + 1) × 2000 ms / 2 slots = 3000 ms ≥ 1000 ms.
  clock.now += 2000;
  assert.ok(gate.enter('cold') instanceof Promise, 'the queue has one place left');
  assert.equal(gate.waitForRoom('cold'), undefined, 'a full queue and a silent endpoint: nobody waits for it');
  assert.equal(gate.enter('cold'), 'saturated', 'it takes the retry path');
});

test('past a full queue, a fast endpoint still queues what callers bring; a slow one refuses them', () => {
  const { gate } = gateWithClock({ maxConcurrency: 1, maxQueue: 1, maxWaitMs: 1000 });
  assert.equal(gate.enter('fast'), 'entered');
  gate.release('fast', 2);
  assert.equal(gate.enter('fast'), 'entered');
  assert.ok(gate.enter('fast') instanceof Promise);
  assert.ok(gate.waitForRoom('fast') instanceof Promise, 'the events consumer waits for room');
  assert.ok(
    gate.enter('fast') instanceof Promise,
    'a caller that did not wait (a retry) is queued: 2 ms each keeps up',
  );
  // 10 s per delivery: one more would wait 20 s.
  const { gate: slow } = gateWithClock({ maxConcurrency: 1, maxQueue: 1, maxWaitMs: 1000 });
  assert.equal(slow.enter('slow'), 'entered');
  slow.release('slow', 10_000);
  assert.equal(slow.enter('slow'), 'entered');
  assert.ok(slow.enter('slow') instanceof Promise);
  assert.equal(slow.waitForRoom('slow'), undefined);
  assert.equal(slow.enter('slow'), 'saturated');
});

test("a fast endpoint is not blamed for our own loop's delay, and a slow one still is", () => {
  // Each reply waited 400 ms for this process's loop (a starved dispatcher); the endpoint took 20 ms.
  const ownDelay = { ms: 400 };
  const starved = () =>
    gateWithClock({ maxConcurrency: 1, maxQueue: 1, maxWaitMs: 1000, ownDelayMs: () => ownDelay.ms });
  const { gate, clock } = starved();
  assert.equal(gate.enter('fast'), 'entered');
  gate.release('fast', 420);
  assert.equal(gate.enter('fast'), 'entered');
  assert.ok(gate.enter('fast') instanceof Promise);
  // Silent for 500 ms, 400 of them our own: (1 + 1) × 100 ms / 1 slot is well within 1000 ms.
  clock.now += 500;
  assert.ok(gate.waitForRoom('fast') instanceof Promise, 'the events consumer waits for room');
  assert.ok(gate.enter('fast') instanceof Promise, 'not saturated: 420 ms held, 400 of them ours');
  // The same hold with no delay of our own: (1 + 1) × 500 ms / 1 slot = 1000 ms, too long.
  ownDelay.ms = 0;
  assert.equal(gate.enter('fast'), 'saturated', 'the same hold without the delay is a slow endpoint');
  // A hanging endpoint (10 s) is slow whatever our delay.
  ownDelay.ms = 400;
  const { gate: slow } = starved();
  assert.equal(slow.enter('slow'), 'entered');
  slow.release('slow', 10_000);
  assert.equal(slow.enter('slow'), 'entered');
  assert.ok(slow.enter('slow') instanceof Promise);
  assert.equal(slow.enter('slow'), 'saturated');
});

test('a 429 halves the concurrency an endpoint gets; completions win it back one at a time', async () => {
  const { gate } = gateWithClock({ maxConcurrency: 8, maxQueue: 100, maxWaitMs: 60_000 });
  for (let i = 0; i < 8; i++) assert.equal(gate.enter('e'), 'entered');
  const queued = Array.from({ length: 4 }, () => gate.enter('e') as Promise<unknown>);
  gate.release('e', 5, true);
  assert.deepEqual(gate.load('e'), { active: 7, waiting: 4, limit: 4 }, 'no slot handed over while over the new limit');
  for (let i = 0; i < 4; i++) gate.release('e', 5);
  assert.equal(gate.load('e').active, 4, 'back at the limit, which grows by about 1 / limit per completion');
  gate.release('e', 5, true);
  gate.release('e', 5, true);
  assert.equal(gate.load('e').limit, 1);
  for (let i = 0; i < 200; i++) {
    const lane = gate.load('e');
    if (lane.active < lane.limit) assert.equal(gate.enter('e'), 'entered');
    gate.release('e', 5);
  }
  assert.equal(gate.load('e').limit, 8, 'regained, never above ENDPOINT_MAX_CONCURRENCY');
  await Promise.all(queued);
});

test('idle endpoint lanes are forgotten, busy ones are kept', () => {
  const { gate, clock } = gateWithClock({ maxConcurrency: 1, maxQueue: 1, maxWaitMs: 1000, idleLaneMs: 1000 });
  for (let i = 0; i < 100; i++) {
    assert.equal(gate.enter(`idle-${i}`), 'entered');
    gate.release(`idle-${i}`, 1);
  }
  assert.equal(gate.enter('busy'), 'entered'); // never released
  assert.equal(gate.laneCount, 101);
  clock.now = 999;
  gate.enter('new-1');
  assert.equal(gate.laneCount, 102, 'nothing is idle long enough yet');
  clock.now = 1100; // past idleLaneMs, and past the sweep interval (idleLaneMs / 10) since the last sweep
  gate.enter('new-2');
  assert.equal(gate.laneCount, 3, 'the 100 idle lanes are gone; busy, new-1 and new-2 stay');
  assert.equal(gate.load('busy').active, 1);
});

test('a caller waiting for room gives up after the longest wait', async () => {
  const gate = new EndpointGate({ maxConcurrency: 1, maxQueue: 1, maxWaitMs: 50 });
  assert.equal(gate.enter('e'), 'entered');
  gate.release('e', 1);
  assert.equal(gate.enter('e'), 'entered');
  assert.ok(gate.enter('e') instanceof Promise);
  const t0 = performance.now();
  await gate.waitForRoom('e');
  assert.ok(performance.now() - t0 >= 45, 'it waited for the bound, since nothing completed');
  assert.deepEqual(gate.load('e'), { active: 1, waiting: 1, limit: 1 });
});
