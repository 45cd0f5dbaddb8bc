// The subscription table against a model of a few lines: for each key, the last record in topic
// order; a valid put makes the webhook live as written, anything else (a tombstone, a record that
// cannot be used) makes it absent, and a record without a usable key changes nothing. fast-check
// generates sequences of records, hostile ones included (lone surrogates, NUL, U+202E, huge lists,
// duplicate JSON keys, future, past and malformed dates, wrong types, bytes that are not UTF-8),
// and schedules of two replicas applying them through the real applier and store on real Redis:
// batches of any size, interleaved and concurrent, replays from the beginning. Every record must
// get one end (applied, or counted invalid), and both replicas must then answer as the model.
// FUZZ_COUNT sets the number of sequences (1,000 by default), FUZZ_SEED the seed (fixed by
// default, so CI runs the same ones); fast-check prints the seed and path of a failure to replay.
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { test } from 'node:test';
import fc from 'fast-check';
import type { KafkaMessage } from 'kafkajs';
import { Registry } from '../../src/codec/registry.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/shared/logger.js';
import { SubscriptionApplier } from '../../src/subscriptions/applier.js';
import { SubscriptionStore } from '../../src/subscriptions/store.js';
import { SubscriptionSyncer } from '../../src/subscriptions/syncer.js';
import { SubscriptionTable } from '../../src/subscriptions/table.js';
import { stackEnv } from '../helpers/env.js';
import { createTestTopic, testAdmin, testKafka } from '../helpers/kafka.js';
import { deleteKeys, serviceRedis } from '../helpers/redis.js';

const RUNS = Number(process.env.FUZZ_COUNT ?? 1000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261204);

// A small world, so that sequences revisit the same keys, projects and events.
const IDS = ['a', 'b', 'c:1', 'd\u0000', '\u202eE'];
const PROJECTS = ['p1', 'p2', 'p\u0000', 'p:3', '{p}'];
const EVENTS = ['TODO_CREATED', 'COMMENT_CREATED'];
const PARTITIONS = 3;
const partitionOf = (id: string) => IDS.indexOf(id) % PARTITIONS;
const LONE = fc.constantFrom('\ud800', '\udfff', '\ud83d', '\udc00x');

/** What the model expects of a record: a live webhook as written, the webhook gone, or nothing at all (no usable key). */
type Expect =
  | { kind: 'live'; url: string; name: string; enabled: boolean; projects: string[]; events: string[] }
  | { kind: 'gone' }
  | { kind: 'none' };

interface Rec {
  id: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  expect: Expect;
}

const wellFormedText = fc.oneof(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).filter((s) => s.isWellFormed()),
  fc.constantFrom('A\u0000B', '\u202eevil', '🔥', 'line\nbreak', '__proto__'),
);
const anyTime = fc
  .date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true })
  .map((d) => d.toISOString());

const validFields = fc.record({
  url: fc.constantFrom('http://127.0.0.1/a', 'https://example.test/b?x=1', 'http://[::1]:8080/c'),
  name: wellFormedText,
  enabled: fc.boolean(),
  projects: fc.subarray(PROJECTS, { minLength: 1 }),
  events: fc.subarray(EVENTS, { minLength: 1 }),
  updatedAt: fc.oneof(anyTime, fc.constant('9999-12-31T23:59:59.999Z'), fc.constant(new Date().toISOString())),
  filterTitle: fc.option(wellFormedText, { nil: undefined }),
});
type Fields = typeof validFields extends fc.Arbitrary<infer T> ? T : never;

function subscriptionJson(id: string, f: Fields): Record<string, unknown> {
  return {
    id,
    uid: 'uid',
    name: f.name,
    url: f.url,
    secret: 'whsec_c2VjcmV0',
    status: 'HEALTHY',
    enabled: f.enabled,
    metadata: { events: f.events, projectIds: f.projects },
    companyId: 'co',
    createdById: 'u',
    createdAt: '2022-12-01T11:23:09.000Z',
    updatedAt: f.updatedAt,
    filters: f.filterTitle === undefined ? null : { path: 'currentValue.title', op: 'eq', value: f.filterTitle },
  };
}

const live = (f: Fields): Expect => ({
  kind: 'live',
  url: f.url,
  name: f.name,
  enabled: f.enabled,
  projects: [...f.projects],
  events: [...f.events],
});

/** Each way a value can make its record unusable; the webhook is then absent. */
const hostile = (id: string) =>
  fc.oneof(
    fc
      .tuple(fc.constantFrom('name', 'url', 'companyId', 'uid', 'secret'), LONE)
      .map(([field, lone]) => ({ [field]: `x${lone}` })),
    LONE.map((lone) => ({ metadata: { events: EVENTS, projectIds: ['p1', `p${lone}`] } })),
    LONE.map((lone) => ({ metadata: { events: [`E${lone}`], projectIds: ['p1'] } })),
    LONE.map((lone) => ({ filters: { path: 'currentValue.t', op: 'in', value: [`v${lone}`] } })),
    LONE.map((lone) => ({ filters: { path: 'currentValue.t', op: 'eq', value: { [`k${lone}`]: 1 } } })),
    fc
      .constantFrom('1', '2026-12-04T10:00:00', '2026-02-30T00:00:00Z', '', 'yesterday', 42)
      .map((updatedAt) => ({ updatedAt })),
    fc.constantFrom('yes', 1, null).map((enabled) => ({ enabled })),
    fc.constantFrom<Record<string, unknown>>(
      { metadata: { events: EVENTS, projectIds: 'p1' } },
      { metadata: null },
      { url: 42 },
      { url: 'ftp://x/' },
      { id: `${id}-other` },
      { ordering: 'random' },
      { rateLimitPerSecond: -1 },
    ),
    fc.constant({ metadata: { events: EVENTS, projectIds: Array.from({ length: 10_001 }, (_, i) => `q${i}`) } }),
  );

const kafkaTimestamp = fc.oneof(
  fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }).map(String),
  fc.constantFrom('-1', '0', '253402300799999'),
);

/** A record as a failure report prints it: its key and value as text, not byte arrays. */
function printable(r: Rec): Rec {
  const text = (b: Buffer | null) =>
    b === null ? 'null' : isUtf8(b) ? JSON.stringify(b.toString('utf8')) : `hex:${b.toString('hex')}`;
  return Object.assign(r, {
    [fc.toStringMethod]: () =>
      `{key: ${text(r.key)}, value: ${text(r.value)}, ts: ${r.timestamp}, expect: ${r.expect.kind}}`,
  });
}

/** One record for key `id`, and what the model expects of it. */
const record = (id: string): fc.Arbitrary<Rec> => {
  const key = Buffer.from(id);
  const rec = (value: Buffer | null, timestamp: string, expect: Expect): Rec =>
    printable({ id, key, value, timestamp, expect });
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(validFields, kafkaTimestamp)
        .map(([f, ts]) => rec(Buffer.from(JSON.stringify(subscriptionJson(id, f))), ts, live(f))),
    },
    // Duplicate keys in the JSON text: the last one counts, as JSON.parse reads it.
    {
      weight: 1,
      arbitrary: fc
        .tuple(validFields, kafkaTimestamp)
        .map(([f, ts]) =>
          rec(
            Buffer.from(
              `{"url":"http://decoy/","enabled":${!f.enabled},${JSON.stringify(subscriptionJson(id, f)).slice(1)}`,
            ),
            ts,
            live(f),
          ),
        ),
    },
    { weight: 2, arbitrary: kafkaTimestamp.map((ts) => rec(null, ts, { kind: 'gone' })) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(validFields, hostile(id), kafkaTimestamp)
        .map(([f, bad, ts]) =>
          rec(Buffer.from(JSON.stringify({ ...subscriptionJson(id, f), ...bad })), ts, { kind: 'gone' }),
        ),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.uint8Array({ maxLength: 40 }), validFields, kafkaTimestamp).map(([bytes, f, ts]) => {
        // Not JSON, or JSON with a byte that is not UTF-8 in it.
        const value =
          bytes.length % 2
            ? Buffer.from(bytes)
            : Buffer.from(JSON.stringify(subscriptionJson(id, f)).replace('HEALTHY', 'HEALTH\u00ffY'), 'latin1');
        return rec(value, ts, { kind: 'gone' });
      }),
    },
    // Keys the table cannot use: none, empty, or bytes that are not UTF-8. They change nothing.
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom(null, Buffer.alloc(0), Buffer.from([0xff, 0x61]), Buffer.from([0x61, 0xed, 0xa0, 0x80])),
          validFields,
        )
        .map(([badKey, f]) =>
          printable({
            id,
            key: badKey,
            value: Buffer.from(JSON.stringify(subscriptionJson(id, f))),
            timestamp: '1700000000000',
            expect: { kind: 'none' },
          }),
        ),
    },
  );
};

/** A step of the schedule: a replica applies the next records of a partition, reads some candidates (filling its cache), or starts over from the beginning. */
type Step =
  | { replica: 0 | 1; what: 'apply'; partition: number; count: number }
  | { replica: 0 | 1; what: 'read' }
  | { replica: 0 | 1; what: 'replay' };
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      replica: fc.constantFrom(0, 1),
      what: fc.constant('apply'),
      partition: fc.nat(PARTITIONS - 1),
      count: fc.integer({ min: 1, max: 8 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ replica: fc.constantFrom(0, 1), what: fc.constant('read') }) },
  { weight: 1, arbitrary: fc.record({ replica: fc.constantFrom(0, 1), what: fc.constant('replay') }) },
) as fc.Arbitrary<Step>;

const sequence = fc.array(fc.constantFrom(...IDS).chain(record), { minLength: 1, maxLength: 30 });

/** Whether the table must count this record as unusable: no usable key, or a value it cannot use. */
const isUnusable = (r: Rec) => r.expect.kind === 'none' || (r.expect.kind === 'gone' && r.value !== null);

/** The model: the last record of each key, in topic order. */
function model(records: readonly Rec[]): Map<string, Expect> {
  const last = new Map<string, Expect>();
  for (const r of records) if (r.expect.kind !== 'none') last.set(r.id, r.expect);
  return last;
}

const noRegistry = { decode: () => Promise.reject(new Error('JSON only')) } as unknown as Registry;
const silent = createLogger({ level: 'error', write: () => {} });
const ALL_PAIRS = PROJECTS.flatMap((projectId) => EVENTS.map((eventType) => ({ projectId, eventType })));

/** What a replica is checked on: its cache, and how many unusable records it read. */
interface ReplicaView {
  table: SubscriptionTable;
  metrics: Metrics;
  invalidApplied: number;
}

/** The table in Redis, and each replica's cache, answer as the model of `records`. */
async function assertAsModel(store: SubscriptionStore, replicas: readonly ReplicaView[], records: readonly Rec[]) {
  const expected = model(records);
  const liveIds = [...expected].filter(([, e]) => e.kind === 'live').map(([id]) => id);
  assert.equal(await store.liveCount(), liveIds.length, 'live count');
  for (const id of IDS) {
    const e = expected.get(id);
    const stored = await store.get(id);
    if (e?.kind !== 'live') {
      assert.equal(stored, null, `${JSON.stringify(id)} is absent`);
      continue;
    }
    const got = JSON.parse(stored!.json);
    assert.deepEqual(
      {
        url: got.url,
        name: got.name,
        enabled: got.enabled,
        projects: got.metadata.projectIds,
        events: got.metadata.events,
      },
      { url: e.url, name: e.name, enabled: e.enabled, projects: e.projects, events: e.events },
      `${JSON.stringify(id)} as last written`,
    );
  }
  const want = ALL_PAIRS.map(({ projectId, eventType }) =>
    liveIds
      .filter((id) => {
        const e = expected.get(id) as Extract<Expect, { kind: 'live' }>;
        return e.projects.includes(projectId) && e.events.includes(eventType);
      })
      .sort(),
  );
  const rows = await store.lookup(ALL_PAIRS);
  assert.deepEqual(
    rows.map((found) => found.map((c) => c.id).sort()),
    want,
    'the index',
  );
  for (const { id, version } of rows.flat()) {
    assert.equal(version, (await store.get(id))?.version, `${JSON.stringify(id)} indexed at its home's version`);
  }
  for (const r of replicas) {
    const cached = await r.table.candidates(ALL_PAIRS);
    assert.deepEqual(
      ALL_PAIRS.map(({ projectId, eventType }) =>
        cached
          .get(`${projectId}\n${eventType}`)!
          .map((a) => a.sub.id)
          .sort(),
      ),
      want,
      "a replica's cache, once it has read every record",
    );
    const counted = (await r.metrics.subscriptionsInvalid.get()).values.reduce((sum, v) => sum + v.value, 0);
    assert.equal(counted, r.invalidApplied, 'every unusable record it read is counted once');
  }
}

/** Fails instead of waiting forever: with Redis up, nothing here has a reason to be retried. */
async function noRetry<T>(fn: () => Promise<T>, what: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if ((err as { retriable?: boolean }).retriable)
      throw new Error(`${what} asked to be retried with Redis up: ${(err as Error).message}`);
    throw err;
  }
}

test(`the table answers as the model after any schedule of two replicas (${RUNS} sequences, seed ${SEED})`, async (t) => {
  const redis = serviceRedis();
  const base = `test:model:${process.pid}:${Date.now()}:`;
  t.after(async () => {
    await deleteKeys(redis, base);
    redis.disconnect();
  });
  let run = 0;
  t.diagnostic(`FUZZ_SEED=${SEED} FUZZ_COUNT=${RUNS}`);

  await fc.assert(
    fc.asyncProperty(sequence, fc.array(step, { maxLength: 40 }), async (records, schedule) => {
      const prefix = `${base}${run++}:`;
      const store = new SubscriptionStore(redis, prefix);
      await store.beginBuild('tok');
      assert.ok(await store.markReady('tok'));
      // The topic: each key's records in its partition, at increasing offsets.
      const partitions: KafkaMessage[][] = Array.from({ length: PARTITIONS }, () => []);
      const invalidIn: boolean[][] = Array.from({ length: PARTITIONS }, () => []);
      for (const r of records) {
        const log = partitions[partitionOf(r.id)]!;
        log.push({
          key: r.key,
          value: r.value,
          timestamp: r.timestamp,
          offset: String(log.length),
          attributes: 0,
          headers: {},
        } as KafkaMessage);
        invalidIn[partitionOf(r.id)]!.push(isUnusable(r));
      }
      const replicas = [0, 1].map(() => {
        const metrics = new Metrics({ defaultMetrics: false });
        const table = new SubscriptionTable(store, { cacheMaxEntries: 100, cacheTtlMs: 60_000 }, metrics);
        const applier = new SubscriptionApplier({
          registry: noRegistry,
          store,
          table,
          metrics,
          log: silent,
          untilDone: noRetry,
        });
        return { metrics, table, applier, next: [0, 0, 0], invalidApplied: 0 };
      });
      const applyNext = async (r: (typeof replicas)[number], partition: number, count: number) => {
        const from = r.next[partition]!;
        const batch = partitions[partition]!.slice(from, from + count);
        if (batch.length === 0) return;
        r.next[partition] = from + batch.length;
        r.invalidApplied += invalidIn[partition]!.slice(from, from + batch.length).filter(Boolean).length;
        await r.applier.apply(partition, batch);
      };
      const run1 = async (s: Step) => {
        const r = replicas[s.replica]!;
        if (s.what === 'apply') await applyNext(r, s.partition, s.count);
        else if (s.what === 'read') await r.table.candidates(ALL_PAIRS);
        else {
          r.next = [0, 0, 0];
          r.table.clear();
          r.applier.reset();
        }
      };
      // Steps of the two replicas run concurrently, two at a time.
      for (let i = 0; i < schedule.length; i += 2) await Promise.all(schedule.slice(i, i + 2).map(run1));
      // Then each replica reads every partition to its end.
      await Promise.all(
        replicas.map(async (r) => {
          for (let p = 0; p < PARTITIONS; p++) await applyNext(r, p, partitions[p]!.length);
        }),
      );

      await assertAsModel(store, replicas, records);
    }),
    { numRuns: RUNS, seed: SEED, includeErrorInReport: true },
  );
});

test('the real syncer, reading a real topic, builds the table the model expects (two replicas)', async (t) => {
  const kafka = testKafka();
  const admin = await testAdmin(t, kafka);
  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const redis = serviceRedis();
  const base = `test:model-kafka:${process.pid}:${Date.now()}:`;
  t.after(async () => {
    await deleteKeys(redis, base);
    redis.disconnect();
  });
  const registry = new Registry(stackEnv().SCHEMA_REGISTRY_URL);
  const sequences = fc.sample(sequence, { numRuns: 3, seed: SEED });
  for (const [i, records] of sequences.entries()) {
    const topic = await createTestTopic(t, admin, 'it.model', { numPartitions: PARTITIONS });
    await producer.send({
      topic,
      messages: records.map((r) => ({ key: r.key, value: r.value, partition: partitionOf(r.id) })),
    });
    const store = new SubscriptionStore(redis, `${base}${i}:`);
    const replicas = [0, 1].map((n) => {
      const metrics = new Metrics({ defaultMetrics: false });
      const table = new SubscriptionTable(store, { cacheMaxEntries: 100, cacheTtlMs: 60_000 }, metrics);
      const syncer = new SubscriptionSyncer({
        kafka,
        admin,
        topic,
        groupId: `${topic}.table.${n}`,
        registry,
        store,
        table,
        metrics,
        log: silent,
        freshnessTimeoutMs: 30_000,
        untilDone: noRetry,
      });
      const invalidApplied = records.filter(isUnusable).length;
      return { syncer, table, metrics, invalidApplied };
    });
    await Promise.all(replicas.map((r) => r.syncer.start()));
    try {
      assert.ok(replicas.every((r) => r.syncer.isReady()));
      await assertAsModel(store, replicas, records);
    } finally {
      await Promise.all(replicas.map((r) => r.syncer.stop()));
    }
  }
});
