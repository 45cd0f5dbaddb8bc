import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttemptOutcome } from '../../src/delivery/classify.js';
import { decide, formatDuration, type RetryPolicyOptions } from '../../src/retries/policy.js';
import { RetryTiers } from '../../src/retries/record.js';

const policy: RetryPolicyOptions = {
  scheduleMs: [5000, 60_000, 300_000],
  jitter: 0.1,
  retryAfterMaxMs: 3_600_000,
  retryOnStatus: new Set([409]),
};
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
  assert.deepEqual(
    decide(o, 0, policy, () => 0),
    { kind: 'retry', delayMs: 5000 },
  );
  assert.deepEqual(
    decide(o, 1, policy, () => 0),
    { kind: 'retry', delayMs: 60_000 },
  );
  assert.deepEqual(
    decide(o, 2, policy, () => 0),
    { kind: 'retry', delayMs: 300_000 },
  );
  assert.deepEqual(
    decide(o, 3, policy, () => 0),
    { kind: 'exhausted' },
  );
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
  assert.deepEqual(
    decide(outcome({ retriable: true, retryAfterMs: 120_000 }), 0, policy, () => 0),
    { kind: 'retry', delayMs: 120_000 },
  );
  assert.deepEqual(
    decide(outcome({ retriable: true, retryAfterMs: 1000 }), 0, policy, () => 0),
    { kind: 'retry', delayMs: 5000 },
  );
  assert.deepEqual(
    decide(outcome({ retriable: true, retryAfterMs: 86_400_000 }), 0, policy, () => 0),
    { kind: 'retry', delayMs: 3_600_000 },
  );
});

test('final outcomes say why; RETRY_ON_STATUS makes a 4xx retriable', () => {
  assert.deepEqual(decide(outcome({ httpStatus: 400, code: 'HTTP_STATUS' }), 0, policy), {
    kind: 'final',
    reason: 'final_status',
  });
  assert.deepEqual(decide(outcome({ httpStatus: 410, code: 'HTTP_STATUS', gone: true }), 0, policy), {
    kind: 'final',
    reason: 'gone',
  });
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
