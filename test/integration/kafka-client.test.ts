import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { createKafka } from '../../src/kafka/index.js';
import { createLogger } from '../../src/shared/index.js';
import { defer } from '../helpers/defer.js';
import { stackEnv } from '../helpers/env.js';
import { uniqueName } from '../helpers/kafka.js';
import { waitFor } from '../helpers/wait.js';

interface QueueState {
  pending: unknown[];
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
}

const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as {
  prototype: QueueState;
};

test("the service's Kafka client leaves an idle connection alone once its requests are answered", async (t) => {
  // Every response runs its queue's checkPendingRequests: that is how the queues are found.
  const queues = new Set<QueueState>();
  const check = RequestQueue.prototype.checkPendingRequests;
  RequestQueue.prototype.checkPendingRequests = function (this: QueueState) {
    queues.add(this);
    return check.call(this);
  };
  defer(t, () => {
    RequestQueue.prototype.checkPendingRequests = check;
  });
  const kafka = createKafka({
    brokers: stackEnv().KAFKA_BROKERS.split(','),
    clientId: uniqueName('idle'),
    log: createLogger({ level: 'error', write: () => {} }),
  });
  const admin = kafka.admin();
  await admin.connect();
  defer(t, () => admin.disconnect());
  await admin.listTopics();
  await admin.fetchTopicMetadata();

  // Nothing waits, so no check may stay scheduled. kafkajs alone kept one scheduled on every
  // connection, each rescheduling the next a millisecond later (444 checks in 500 ms here).
  assert.ok(queues.size > 0, 'no request queue answered');
  await waitFor(() => [...queues].every((q) => q.pending.length === 0 && q.throttleCheckTimeoutId === null), {
    what: 'idle request queues with no check scheduled',
    timeoutMs: 2000,
  });
  // And the connection still answers.
  assert.ok(Array.isArray(await admin.listTopics()));
});
