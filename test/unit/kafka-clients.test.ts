// Every kafkajs client in the repository carries the service's fix of kafkajs (newKafkaClient):
// the bench's, the tests' and the demo's share the two cores with what they measure or test.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { logLevel } from 'kafkajs';
import { newKafkaClient } from '../../src/kafka/index.js';
import { tsFiles } from '../helpers/ts-files.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NEW_KAFKA = /\bnew\s+Kafka\s*\(/;
/** Where a plain kafkajs client may be made: newKafkaClient itself, and the tutorial-style naive dispatcher. */
const ALLOWED = new Set(['src/kafka/client.ts', 'bench/naive.ts']);

test('no kafkajs client is made outside newKafkaClient (bench/naive.ts aside)', () => {
  const plain = ['src', 'bench', 'test']
    .flatMap((dir) => tsFiles(path.join(ROOT, dir)))
    .map((file) => path.relative(ROOT, file).split(path.sep).join('/'))
    .filter((file) => !ALLOWED.has(file) && NEW_KAFKA.test(fs.readFileSync(path.join(ROOT, file), 'utf8')));
  assert.deepEqual(plain, [], `plain kafkajs clients in ${plain.join(', ')}: make them with newKafkaClient`);
});

test('a client from newKafkaClient leaves a request queue with nothing pending unscheduled', () => {
  // This file calls nothing else that installs the fix: the client below is what must.
  newKafkaClient({ brokers: ['127.0.0.1:1'], clientId: 'unit', logLevel: logLevel.NOTHING });
  const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as new (
    options: Record<string, unknown>,
  ) => { throttleCheckTimeoutId: NodeJS.Timeout | null; scheduleCheckPendingRequests(): void };
  const queue = new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1000, clientId: 'unit', broker: 'b:1' });
  queue.scheduleCheckPendingRequests(); // as each response makes it do
  assert.equal(queue.throttleCheckTimeoutId, null, 'a timer was scheduled with nothing to check');
});
