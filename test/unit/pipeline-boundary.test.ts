// The events pipeline with fakes for its collaborators.
// - The per-event failure boundary: an unexpected exception in matching or in a delivery
//   dead-letters the event as INTERNAL_ERROR and finishes its offset. Before it, the offset stayed
//   unfinished and the partition's commit stopped for good.
// - A batch is decoded in steps: while the in-flight bound is full, the events not started yet
//   are not held decoded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import type { Registry } from '../../src/codec/registry.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { EVENTS_PER_STEP, EventPipeline } from '../../src/ingest/pipeline.js';
import type { DeadLetters } from '../../src/kafka/dead-letters.js';
import { PartitionTracker } from '../../src/kafka/offset-tracker.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { DeliveryRunner } from '../../src/runner/runner.js';
import { createLogger } from '../../src/shared/logger.js';
import { Semaphore } from '../../src/shared/semaphore.js';
import { activate } from '../../src/subscriptions/subscription.js';
import type { SubscriptionTable } from '../../src/subscriptions/table.js';
import { candidateKey } from '../../src/subscriptions/table.js';
import { Tracing } from '../../src/tracing/tracing.js';

function pipelineWith(opts: {
  matches?: () => boolean;
  run?: () => Promise<void>;
  takingIn?: () => boolean;
  events?: number;
  inFlight?: number;
  /** The value of message i, when not a valid event. */
  valueAt?: (i: number) => Buffer | null;
}) {
  const letters: { offset: string; reason: string; detail: string }[] = [];
  /** How many events each lookup of candidates was for: one per event decoded. */
  const lookups: number[] = [];
  const sub = activate(sampleSubscription({ id: 'wh' }));
  const target = opts.matches ? { ...sub, matches: opts.matches } : sub;
  const metrics = new Metrics({ defaultMetrics: false });
  const pipeline = new EventPipeline({
    registry: {} as Registry,
    table: {
      candidates: async (keys: { projectId: string; eventType: string }[]) => {
        lookups.push(keys.length);
        return new Map(keys.map((k) => [candidateKey(k.projectId, k.eventType), [target]]));
      },
    } as unknown as SubscriptionTable,
    ensureFresh: async () => {},
    runner: { run: opts.run ?? (async () => {}), waitForRoom: () => undefined } as unknown as DeliveryRunner,
    deadLetters: {
      write: async (m: KafkaMessage, _from: unknown, reason: string, detail: string) => {
        letters.push({ offset: m.offset, reason, detail });
      },
    } as unknown as DeadLetters,
    limiter: new Semaphore(opts.inFlight ?? 10),
    metrics,
    log: createLogger({ write: () => {} }),
    untilDone: (fn) => fn(),
    tracing: new Tracing({ endpoint: '', serviceName: 'test', instanceId: 'test' }),
  });
  const tracker = new PartitionTracker();
  const messages = Array.from(
    { length: opts.events ?? 3 },
    (_, i) =>
      ({
        offset: String(i),
        timestamp: String(Date.now()),
        key: null,
        value: opts.valueAt?.(i) ?? Buffer.from(JSON.stringify(sampleEvent({ eventId: `e${i}` }))),
        headers: {},
        attributes: 0,
      }) as unknown as KafkaMessage,
  );
  const resolved: string[] = [];
  const handle = () =>
    pipeline.handleBatch({
      topic: 't',
      partition: 0,
      messages,
      tracker,
      resolveOffset: (offset) => resolved.push(offset),
      heartbeat: async () => {},
      pauseFor: () => {},
      takingIn: opts.takingIn ?? (() => true),
    });
  return { handle, tracker, letters, metrics, resolved, lookups };
}

async function settled(tracker: PartitionTracker, offset: number) {
  for (let i = 0; i < 100 && tracker.committable() !== offset; i++) await new Promise((r) => setImmediate(r));
  return tracker.committable();
}

test('a filter that throws: each event is dead-lettered as INTERNAL_ERROR (stage match) and its offset finishes', async () => {
  const { handle, tracker, letters, metrics } = pipelineWith({
    matches: () => {
      throw new TypeError('boom in a filter');
    },
  });
  await handle();
  assert.equal(await settled(tracker, 3), 3);
  assert.deepEqual(
    letters.map((l) => [l.offset, l.reason]),
    [
      ['0', 'INTERNAL_ERROR'],
      ['1', 'INTERNAL_ERROR'],
      ['2', 'INTERNAL_ERROR'],
    ],
  );
  assert.match(letters[0]!.detail, /^match: boom in a filter/);
  assert.equal((await metrics.internalErrors.get()).values.find((v) => v.labels.stage === 'match')?.value, 3);
});

test('a delivery that rejects: the event is dead-lettered once (stage delivery) and its offset finishes', async () => {
  const { handle, tracker, letters } = pipelineWith({
    run: () => Promise.reject(new RangeError('Invalid string length')),
  });
  await handle();
  assert.equal(await settled(tracker, 3), 3);
  assert.deepEqual(
    letters.map((l) => l.reason),
    ['INTERNAL_ERROR', 'INTERNAL_ERROR', 'INTERNAL_ERROR'],
  );
  assert.match(letters[0]!.detail, /^delivery: Invalid string length/);
});

test('a delivery stopped by shutdown leaves its offset unfinished, for the next owner', async () => {
  const { BlueWebhooksError } = await import('../../src/shared/errors.js');
  const { handle, tracker, letters } = pipelineWith({
    run: () => Promise.reject(new BlueWebhooksError('SHUTTING_DOWN', 'stopping')),
  });
  await handle();
  assert.equal(await settled(tracker, 3), null);
  assert.equal(letters.length, 0);
});

test('a rebalance heard by another batch: this one takes nothing more in, and leaves the rest unresolved for the next owner', async () => {
  // Partitions are consumed concurrently: the first event's delivery starts, then another batch
  // hears that the group is rebalancing. Events 1 and 2 must not become work the drain misses.
  let rebalancing = false;
  const { handle, tracker, resolved } = pipelineWith({
    run: async () => {
      rebalancing = true;
    },
    takingIn: () => !rebalancing,
  });
  await handle();
  assert.deepEqual(resolved, ['0']);
  assert.equal(tracker.has(1), false);
  assert.equal(await settled(tracker, 1), 1);
});

test('a batch is decoded in steps: while the in-flight bound is full, the rest is not held decoded', async () => {
  // One delivery may be under way and it does not end until released: the pipeline starts the
  // first event, then waits for a slot. Before steps, all 300 events were decoded by then.
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let runs = 0;
  const { handle, tracker, lookups } = pipelineWith({
    events: 300,
    inFlight: 1,
    run: () => {
      runs++;
      return held;
    },
  });
  const done = handle();
  try {
    for (let i = 0; i < 100 && runs === 0; i++) await new Promise((r) => setImmediate(r));
    assert.equal(runs, 1);
    const decodedBeforeRoom = lookups.reduce((n, k) => n + k, 0);
    assert.ok(
      decodedBeforeRoom <= EVENTS_PER_STEP,
      `${decodedBeforeRoom} events decoded while one delivery held the only slot`,
    );
  } finally {
    release();
    await done;
  }
  assert.equal(runs, 300);
  assert.equal(
    lookups.reduce((n, k) => n + k, 0),
    300,
  );
  assert.equal(await settled(tracker, 300), 300);
});

test('hostile records on both sides of a step boundary each get their end, and the rest are delivered', async () => {
  // Steps cut a batch at EVENTS_PER_STEP: the records around the cut are ones no rule foresaw.
  const cut = EVENTS_PER_STEP;
  const hostile = new Map<number, Buffer>([
    [cut - 1, Buffer.from('{"id": "e", "event": ')], // cut short
    [cut, Buffer.from(`${'['.repeat(500_000)}${']'.repeat(500_000)}`)], // 1 MB, an array 500,000 deep
    [cut + 1, Buffer.from(JSON.stringify({ ...sampleEvent(), project: { id: 42 }, event: 'TODO\u0000\u202e' }))],
    [cut + 2, Buffer.alloc(0)],
    [cut + 3, Buffer.from(`${'{"a":'.repeat(200_000)}1${'}'.repeat(200_000)}`)], // an object 200,000 deep
  ]);
  let runs = 0;
  const { handle, tracker, letters } = pipelineWith({
    events: 2 * cut + 4,
    valueAt: (i) => hostile.get(i) ?? null,
    run: async () => {
      runs++;
    },
  });
  await handle();
  assert.equal(await settled(tracker, 2 * cut + 4), 2 * cut + 4);
  assert.deepEqual(
    letters.map((l) => Number(l.offset)),
    [...hostile.keys()],
  );
  assert.deepEqual(
    letters.map((l) => l.reason),
    ['INVALID_JSON', 'DECODE_FAILED', 'INVALID_EVENT', 'INVALID_EVENT', 'INVALID_EVENT'],
  );
  assert.equal(runs, 2 * cut + 4 - hostile.size);
});
