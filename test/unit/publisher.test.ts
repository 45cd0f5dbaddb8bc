import assert from 'node:assert/strict';
import { test } from 'node:test';
import avro from 'avsc';
import { CONFLUENT_HEADER_BYTES, type Registry, readSchema } from '../../src/codec/index.js';
import type { KafkaWriter } from '../../src/kafka/index.js';
import { AvroPublisher, type WebhookResult } from '../../src/results/index.js';

const SCHEMA_ID = 0x01020304;
const resultType = avro.Type.forSchema(JSON.parse(readSchema('webhook-result')));

/** A publisher of outcomes with the real schema; the registry answers from memory. */
async function startedPublisher(): Promise<AvroPublisher<WebhookResult>> {
  const registry = {
    register: async () => SCHEMA_ID,
    client: { getSchema: async () => resultType },
  } as unknown as Registry;
  const publisher = new AvroPublisher<WebhookResult>({
    writer: {} as KafkaWriter,
    registry,
    schema: 'webhook-result',
    topic: 'blue.webhook-results',
  });
  await publisher.start();
  return publisher;
}

function outcome(snippet: string | null): WebhookResult {
  return {
    deliveryId: 'msg_x',
    eventId: 'evt_1',
    webhookId: 'wh_1',
    eventType: 'TODO_CREATED',
    projectId: 'proj_1',
    attempt: 1,
    outcome: 'DELIVERED',
    httpStatus: 200,
    durationMs: 12,
    error: null,
    timestamp: 1_764_547_200_000,
    reason: null,
    nextAttemptAt: null,
    responseSnippet: snippet,
  } as WebhookResult;
}

/** Decodes a Confluent-framed value: magic byte, schema id, then the record. */
function unframe(value: Buffer): { magic: number; id: number; record: unknown } {
  return {
    magic: value[0]!,
    id: value.readInt32BE(1),
    record: resultType.fromBuffer(value.subarray(CONFLUENT_HEADER_BYTES)),
  };
}

test('an outcome is framed with the schema id and decodes back to itself, at its exact size', async () => {
  const publisher = await startedPublisher();
  const record = outcome('ok');
  const value = publisher.encode(record);
  assert.deepEqual(unframe(value), { magic: 0, id: SCHEMA_ID, record: resultType.clone(record) });
  assert.equal(value.length, CONFLUENT_HEADER_BYTES + resultType.toBuffer(record).length);
});

test('a record larger than the scratch grows it, and the records after it keep the header and no stale bytes', async () => {
  const publisher = await startedPublisher();
  const large = outcome('é'.repeat(20_000)); // 40,000 bytes of UTF-8, past the first 4 KB scratch
  const small = outcome(null);
  const first = publisher.encode(small);
  const grown = publisher.encode(large);
  const after = publisher.encode(small);
  assert.deepEqual(unframe(grown), { magic: 0, id: SCHEMA_ID, record: resultType.clone(large) });
  assert.deepEqual(unframe(after), { magic: 0, id: SCHEMA_ID, record: resultType.clone(small) });
  assert.deepEqual(after, first);
  // Each value is a copy: encoding the next record does not change one already handed out.
  assert.deepEqual(unframe(first).record, resultType.clone(small));
});

test('a record that does not fit the schema throws, and the publisher goes on encoding', async () => {
  const publisher = await startedPublisher();
  assert.throws(() => publisher.encode({ ...outcome(null), attempt: 'one' } as unknown as WebhookResult));
  assert.deepEqual(unframe(publisher.encode(outcome('x'))).record, resultType.clone(outcome('x')));
});
