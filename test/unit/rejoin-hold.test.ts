// The rejoin hold on kafkajs's own ConsumerGroup (no broker): a member's hold runs before its next
// JoinGroup, once, with a heartbeat that keeps its session; other members and dropped holds do not
// wait; and a kafkajs the patches do not fit fails when they are installed.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { kafkajsPrototype } from '../../src/kafka/kafkajs-internals.js';
import {
  CONSUMER_GROUP,
  dropRejoinHold,
  heldMembers,
  holdNextRejoin,
  installRejoinHold,
} from '../../src/kafka/rejoin-hold.js';
import { REQUEST_QUEUE } from '../../src/kafka/request-queue-timer.js';

const require = createRequire(import.meta.url);
const ConsumerGroup = require('kafkajs/src/consumer/consumerGroup.js') as { prototype: object };

/**
 * A ConsumerGroup of kafkajs's own class, with only what the hold touches: its member id and a
 * heartbeat that notes each call. kafkajs's joinAndSync itself then fails on the missing rest,
 * which marks the moment the JoinGroup would have gone out.
 */
function member(memberId: string | null, steps: string[]) {
  const group = Object.create(ConsumerGroup.prototype) as {
    memberId: string | null;
    heartbeat(options: { interval: number }): Promise<void>;
    joinAndSync(): Promise<void>;
  };
  group.memberId = memberId;
  group.heartbeat = async ({ interval }) => void steps.push(`heartbeat ${interval}`);
  return {
    rejoin: () => group.joinAndSync().catch(() => void steps.push('join')),
  };
}

test('a hold runs before the member rejoins, with a heartbeat that keeps its session, and only once', async () => {
  installRejoinHold();
  const steps: string[] = [];
  holdNextRejoin('m-1', async (heartbeat) => {
    steps.push('drain starts');
    await heartbeat();
    await new Promise((resolve) => setTimeout(resolve, 5));
    steps.push('drain ends');
  });
  const m = member('m-1', steps);
  await m.rejoin();
  assert.deepEqual(steps, ['drain starts', 'heartbeat 0', 'drain ends', 'join']);
  await m.rejoin();
  assert.deepEqual(steps.slice(4), ['join'], 'the next rejoin does not wait');
  assert.deepEqual(heldMembers(), []);
});

test("another member's rejoin, and a member without an id yet, do not run the hold", async () => {
  const steps: string[] = [];
  holdNextRejoin('m-2', async () => void steps.push('held'));
  await member('m-3', steps).rejoin();
  await member(null, steps).rejoin();
  assert.deepEqual(steps, ['join', 'join']);
  assert.deepEqual(heldMembers(), ['m-2']);
  dropRejoinHold('m-2');
});

test('a dropped hold (the member joined again under a new id, or stopped) is gone', async () => {
  const steps: string[] = [];
  holdNextRejoin('m-4', async () => void steps.push('held'));
  dropRejoinHold('m-4');
  await member('m-4', steps).rejoin();
  assert.deepEqual(steps, ['join']);
  assert.deepEqual(heldMembers(), []);
});

test('the classes the fixes patch have every method and field they rely on; a missing one fails loudly', () => {
  assert.ok(kafkajsPrototype(CONSUMER_GROUP));
  assert.ok(kafkajsPrototype(REQUEST_QUEUE));
  assert.throws(
    () => kafkajsPrototype({ ...REQUEST_QUEUE, fields: [...REQUEST_QUEUE.fields, 'throttledSince'] }),
    /kafkajs RequestQueue has no throttledSince: its timer fix cannot be installed/,
  );
  assert.throws(
    () => kafkajsPrototype({ ...CONSUMER_GROUP, methods: ['joinAndSync', 'rejoin'] }),
    /kafkajs ConsumerGroup has no rejoin\(\): the rejoin hold cannot be installed/,
  );
});
