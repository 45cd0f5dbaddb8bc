import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { createKafka } from '../../src/kafka/index.js';
import { createLogger } from '../../src/shared/index.js';
import { defer } from '../helpers/defer.js';
import { stackEnv } from '../helpers/env.js';
import { uniqueName } from '../helpers/kafka.js';

const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as {
  prototype: { checkPendingRequests(): void };
};

test("the service's Kafka client leaves an idle connection alone once its requests are answered", async (t) => {
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

  // Count the request queues' checks for half a second of nothing to do.
  const check = RequestQueue.prototype.checkPendingRequests;
  let checks = 0;
  RequestQueue.prototype.checkPendingRequests = function (this: unknown) {
    checks++;
    return check.call(this);
  };
  defer(t, () => {
    RequestQueue.prototype.checkPendingRequests = check;
  });
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 500)); // the idle time measured, not a wait for a condition
  // kafkajs alone checked each connection's queue every millisecond: hundreds here.
  assert.ok(checks <= 5, `${checks} checks of idle request queues in ${Date.now() - started} ms`);
  // And the connection still answers.
  assert.ok(Array.isArray(await admin.listTopics()));
});
