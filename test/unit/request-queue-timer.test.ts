import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { createKafka } from '../../src/kafka/index.js';
import { createLogger } from '../../src/shared/index.js';
import { waitFor } from '../helpers/wait.js';

interface Queue {
  throttledUntil: number;
  pending: unknown[];
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

// The service's kafkajs client installs the fix (src/kafka/request-queue-timer.ts).
createKafka({ brokers: ['127.0.0.1:1'], clientId: 'unit', log: createLogger({ level: 'error', write: () => {} }) });
const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as new (
  options: Record<string, unknown>,
) => Queue;

/** A connection's request queue whose checks are only counted, with their times. */
function queue(): { q: Queue; checks: number[] } {
  const q = new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1000, clientId: 'unit', broker: 'b:1' });
  const checks: number[] = [];
  q.checkPendingRequests = () => {
    checks.push(Date.now());
  };
  return { q, checks };
}

test('a request queue with nothing pending and no throttle schedules no check (kafkajs scheduled one every millisecond)', () => {
  const { q } = queue();
  q.scheduleCheckPendingRequests(); // as each response makes it do
  assert.equal(q.throttleCheckTimeoutId, null, 'a timer was scheduled with nothing to check');
});

test('a pending request is checked again soon, and one held by a throttle once the throttle ends', async () => {
  const waiting = queue();
  waiting.q.pending.push({});
  waiting.q.scheduleCheckPendingRequests();
  await waitFor(() => waiting.checks.length === 1, { what: 'the check of a pending request', timeoutMs: 2000 });

  const throttled = queue();
  const until = Date.now() + 60;
  throttled.q.throttledUntil = until;
  throttled.q.pending.push({});
  throttled.q.scheduleCheckPendingRequests();
  throttled.q.scheduleCheckPendingRequests(); // a second call while one is scheduled adds none
  await waitFor(() => throttled.checks.length === 1, { what: 'the check after the throttle', timeoutMs: 2000 });
  assert.ok(throttled.checks[0]! >= until - 1, 'checked before the throttle ended');

  // Throttled with nothing pending: one check when the throttle ends, as kafkajs does.
  const idle = queue();
  idle.q.throttledUntil = Date.now() + 20;
  idle.q.scheduleCheckPendingRequests();
  assert.notEqual(idle.q.throttleCheckTimeoutId, null);
  await waitFor(() => idle.checks.length === 1, { what: 'the check at the end of the throttle', timeoutMs: 2000 });
});
