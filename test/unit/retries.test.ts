import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EndpointGate } from '../../src/delivery/endpoint-gate.js';
import type { AttemptOutcome } from '../../src/delivery/outcome.js';
import { decide, formatDuration, type RetryPolicyOptions } from '../../src/retries/policy.js';
import { RetryTiers } from '../../src/retries/record.js';

const policy: RetryPolicyOptions = { scheduleMs: [5000, 60_000, 300_000], jitter: 0.1, retryAfterMaxMs: 3_600_000, retryOnStatus: new Set([409]) };
const outcome = (o: Partial<AttemptOutcome>): AttemptOutcome => ({
  delivered: false,
  retriable: false,
  httpStatus: null,
  code: null,
  message: null,
  retryAfterMs: null,
  gone: false,
  ...o,
});

test('the schedule is followed retry by retry, then exhausted', () => {
  const o = outcome({ retriable: true, httpStatus: 500, code: 'HTTP_STATUS' });
  assert.deepEqual(decide(o, 0, policy, () => 0), { kind: 'retry', delayMs: 5000 });
  assert.deepEqual(decide(o, 1, policy, () => 0), { kind: 'retry', delayMs: 60_000 });
  assert.deepEqual(decide(o, 2, policy, () => 0), { kind: 'retry', delayMs: 300_000 });
  assert.deepEqual(decide(o, 3, policy, () => 0), { kind: 'exhausted' });
  assert.deepEqual(decide(outcome({ delivered: true, httpStatus: 200 }), 0, policy), { kind: 'delivered' });
});

test('jitter only shortens a delay, by at most its share', () => {
  const o = outcome({ retriable: true });
  for (const r of [0, 0.25, 0.5, 0.999]) {
    const d = decide(o, 1, policy, () => r);
    assert.ok(d.kind === 'retry' && d.delayMs <= 60_000 && d.delayMs >= 54_000, JSON.stringify(d));
  }
});

test('Retry-After lengthens a delay, up to the cap, and never shortens it', () => {
  assert.deepEqual(decide(outcome({ retriable: true, retryAfterMs: 120_000 }), 0, policy, () => 0), { kind: 'retry', delayMs: 120_000 });
  assert.deepEqual(decide(outcome({ retriable: true, retryAfterMs: 1000 }), 0, policy, () => 0), { kind: 'retry', delayMs: 5000 });
  assert.deepEqual(decide(outcome({ retriable: true, retryAfterMs: 86_400_000 }), 0, policy, () => 0), { kind: 'retry', delayMs: 3_600_000 });
});

test('final outcomes say why; RETRY_ON_STATUS makes a 4xx retriable', () => {
  assert.deepEqual(decide(outcome({ httpStatus: 400, code: 'HTTP_STATUS' }), 0, policy), { kind: 'final', reason: 'final_status' });
  assert.deepEqual(decide(outcome({ httpStatus: 410, code: 'HTTP_STATUS', gone: true }), 0, policy), { kind: 'final', reason: 'gone' });
  assert.deepEqual(decide(outcome({ code: 'TARGET_REFUSED' }), 0, policy), { kind: 'final', reason: 'refused' });
  assert.equal(decide(outcome({ httpStatus: 409, code: 'HTTP_STATUS' }), 0, policy, () => 0).kind, 'retry');
});

test('retry tiers: one topic per distinct delay; a delay goes to the shortest tier at least as long', () => {
  const tiers = new RetryTiers('blue.webhook-retries', [5000, 60_000, 60_000, 7_200_000]);
  assert.deepEqual(tiers.topics, ['blue.webhook-retries.5s', 'blue.webhook-retries.1m', 'blue.webhook-retries.2h']);
  assert.equal(tiers.topicFor(4500), 'blue.webhook-retries.5s');
  assert.equal(tiers.topicFor(5001), 'blue.webhook-retries.1m');
  assert.equal(tiers.topicFor(10 * 3_600_000), 'blue.webhook-retries.2h', 'longer than every tier: the last one');
  assert.equal(formatDuration(300), '300ms');
  assert.equal(formatDuration(86_400_000), '1d');
});

test('the endpoint gate admits up to the cap, queues up to the bound, and hands slots over in order', async () => {
  const gate = new EndpointGate({ maxConcurrency: 2, maxQueue: 1, maxWaitMs: 0 });
  assert.equal(gate.enter('a'), 'entered');
  assert.equal(gate.enter('a'), 'entered');
  const queued = gate.enter('a');
  assert.ok(queued instanceof Promise);
  assert.equal(gate.enter('a'), 'saturated', 'a full queue, and no completion seen yet');
  assert.equal(gate.enter('b'), 'entered', 'other endpoints are unaffected');
  let handedOver = false;
  void (queued as Promise<unknown>).then(() => {
    handedOver = true;
  });
  gate.release('a', 5);
  await Promise.resolve();
  assert.ok(handedOver);
  assert.deepEqual(gate.load('a'), { active: 2, waiting: 0 });
  gate.release('a', 5);
  gate.release('a', 5);
  assert.deepEqual(gate.load('a'), { active: 0, waiting: 0 });
});

test('past a full queue, a fast endpoint makes callers wait for room; a silent one refuses them', async () => {
  const gate = new EndpointGate({ maxConcurrency: 1, maxQueue: 1, maxWaitMs: 1000 });
  // A fast endpoint: 2 ms per delivery, so the expected wait is tiny.
  assert.equal(gate.enter('fast'), 'entered');
  gate.release('fast', 2);
  assert.equal(gate.enter('fast'), 'entered');
  const queued = gate.enter('fast');
  const waitsForRoom = gate.enter('fast');
  assert.ok(queued instanceof Promise && waitsForRoom instanceof Promise, 'both wait rather than being refused');
  gate.release('fast', 2);
  assert.equal(await queued, 'entered');
  gate.release('fast', 2);
  assert.equal(await waitsForRoom, 'entered');
  // A slow endpoint: 10 s per delivery.
  const slow = new EndpointGate({ maxConcurrency: 1, maxQueue: 1, maxWaitMs: 1000 });
  assert.equal(slow.enter('slow'), 'entered');
  slow.release('slow', 10_000);
  assert.equal(slow.enter('slow'), 'entered');
  assert.ok(slow.enter('slow') instanceof Promise);
  assert.equal(slow.enter('slow'), 'saturated');
});

test('idle endpoint lanes are forgotten, busy ones are kept', () => {
  let now = 0;
  const gate = new EndpointGate({ maxConcurrency: 1, maxQueue: 1, maxWaitMs: 1000, idleLaneMs: 1000, now: () => now });
  for (let i = 0; i < 100; i++) {
    assert.equal(gate.enter(`idle-${i}`), 'entered');
    gate.release(`idle-${i}`, 1);
  }
  assert.equal(gate.enter('busy'), 'entered'); // never released
  assert.equal(gate.laneCount, 101);
  now = 999;
  gate.enter('new-1');
  assert.equal(gate.laneCount, 102, 'nothing is idle long enough yet');
  now = 1100; // past idleLaneMs, and past the sweep interval (idleLaneMs / 10) since the last sweep
  gate.enter('new-2');
  assert.equal(gate.laneCount, 3, 'the 100 idle lanes are gone; busy, new-1 and new-2 stay');
  assert.deepEqual(gate.load('busy'), { active: 1, waiting: 0 });
  gate.release('new-1', 1);
  assert.deepEqual(gate.load('new-1'), { active: 0, waiting: 0 });
});

test('a caller waiting for room gives up after the longest wait', async () => {
  const gate = new EndpointGate({ maxConcurrency: 1, maxQueue: 0, maxWaitMs: 50 });
  assert.equal(gate.enter('e'), 'entered');
  gate.release('e', 1);
  assert.equal(gate.enter('e'), 'entered');
  const waiting = gate.enter('e');
  assert.ok(waiting instanceof Promise);
  assert.equal(await waiting, 'saturated', 'nothing completed within 50 ms');
  assert.deepEqual(gate.load('e'), { active: 1, waiting: 0 });
});
