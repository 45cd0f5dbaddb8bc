// The level each kafkajs line gets. The entries are the shapes kafkajs logged on a healthy first
// start in CI (the first-run test failed on them: "no error line"), and one it logs for real trouble.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logLevel } from 'kafkajs';
import { kafkaLogLevel } from '../../src/kafka/client.js';

const loadingStack =
  "KafkaJSProtocolError: The coordinator is loading and hence can't process requests for this group\n" +
  '    at createErrorFromCode (node_modules/kafkajs/src/protocol/error.js:581:10)';

test("a consumer's Crash line for a loading coordinator is a warning: kafkajs names the error only in its message and stack", () => {
  const crash = {
    message: "Crash: KafkaJSProtocolError: The coordinator is loading and hence can't process requests for this group",
    groupId: 'blue-webhooks.table.vm-1',
    stack: loadingStack,
  };
  assert.equal(kafkaLogLevel(logLevel.ERROR, crash), 'warn');
  assert.equal(
    kafkaLogLevel(logLevel.ERROR, { message: 'Crash', stack: loadingStack }),
    'warn',
    'from the stack alone',
  );
});

test("kafkajs's own 'Restarting the consumer' line is a warning: it restarts only after a retriable crash, whose line has its own level", () => {
  // As CI logged it right after the Crash line above, on a first start (the first-run test failed on it).
  const restart = { message: 'Restarting the consumer in 200ms', retryTime: 200, groupId: 'blue-webhooks.table.vm-1' };
  assert.equal(kafkaLogLevel(logLevel.ERROR, restart), 'warn');
});

test('transient errors named in the error field are warnings; rebalances are routine', () => {
  const coordinator = {
    message: 'Response GroupCoordinator(key: 10, version: 2)',
    error: 'The group coordinator is not available',
  };
  assert.equal(kafkaLogLevel(logLevel.ERROR, coordinator), 'warn');
  const leader = { message: 'Response Metadata', error: 'This server is not the leader for that topic-partition' };
  assert.equal(kafkaLogLevel(logLevel.ERROR, leader), 'warn');
  const notFound = { message: 'Crash: KafkaJSGroupCoordinatorNotFound: Failed to find group coordinator' };
  assert.equal(kafkaLogLevel(logLevel.ERROR, notFound), 'warn');
  const dropped = { message: 'The coordinator is not aware of this member, re-joining the group', groupId: 'g' };
  assert.equal(kafkaLogLevel(logLevel.ERROR, dropped), 'warn');
  const heartbeat = { message: 'Response Heartbeat', error: 'The group is rebalancing, so a rejoin is needed' };
  assert.equal(kafkaLogLevel(logLevel.ERROR, heartbeat), 'info');
});

test('real trouble stays an error, and a frame further down a stack does not soften it', () => {
  const auth = {
    message: 'Crash: KafkaJSSASLAuthenticationError: SASL authentication failed',
    error: 'SASL authentication failed',
  };
  assert.equal(kafkaLogLevel(logLevel.ERROR, auth), 'error');
  const stack = 'KafkaJSNonRetriableError: Topic authorization failed\n    at leader not available (x.js:1:1)';
  assert.equal(kafkaLogLevel(logLevel.ERROR, { message: 'Crash: KafkaJSNonRetriableError', stack }), 'error');
  assert.equal(kafkaLogLevel(logLevel.WARN, { message: 'anything' }), 'warn');
  assert.equal(kafkaLogLevel(logLevel.INFO, { message: 'anything' }), 'info');
});
