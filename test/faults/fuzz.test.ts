// Fuzz through the real stack: FUZZ_COUNT (default 10,000) generated event values, mutations of
// valid events of every kind this service has met or could meet, interleaved with good events,
// plus a few hundred mutated subscriptions. Asserted: no crash, every partition committed to its
// end, every value accounted for (an outcome, a dead letter, or no matching webhook), every good
// event delivered, and every unusable subscription counted. `npm run test:fuzz` runs 100,000;
// FUZZ_SEED=<n> replays a run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { eventToAvro } from '../../src/codec/event.js';
import { Registry } from '../../src/codec/registry.js';
import { deliveryId } from '../../src/delivery/payload.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { decodeSubscription } from '../../src/subscriptions/subscription.js';
import {
  collectTopic,
  committedToEnd,
  createScenario,
  parseMetrics,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { serve } from '../helpers/receiver.js';
import { rng } from '../helpers/rng.js';
import { waitFor } from '../helpers/wait.js';

const COUNT = Number(process.env.FUZZ_COUNT ?? 10_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const SUBSCRIPTIONS = 300;
const PROJECT = 'proj_fuzz';
// The mutated subscriptions listen here, so only the few events sent to it fan out to them.
const SUB_PROJECT = 'proj_fuzz_subs';
const TYPES = ['TODO_CREATED', 'TODO_MOVED', 'COMMENT_CREATED', 'TODO:X'];

const random = rng(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

// Odd strings: control characters, CR/LF, lone surrogates, NUL, zero-width, right-to-left, emoji,
// prototype names, very long.
const ODD = [
  'TODO\r\nx-injected: 1',
  'A\u0000B',
  '\ud800',
  '\udfff\ud800',
  '\u200b\u200e\u202e',
  '🔥'.repeat(50),
  'Ünïcödé',
  '',
  ' ',
  '__proto__',
  'constructor',
  'toString',
  '%ZZ',
  '../../etc/passwd',
  '$' + '{jndi:ldap://x}',
  'x'.repeat(100_000),
  '\\',
  '"',
];
const ODD_VALUES: unknown[] = [null, 0, -1, 1e308, Number.MAX_SAFE_INTEGER + 2, true, [], {}, [[[]]], ...ODD];

function nested(depth: number): string {
  return `${'{"a":['.repeat(depth)}1${']}'.repeat(depth)}`;
}

/** One mutated value of an event and the class it belongs to. */
function mutant(i: number): { kind: string; value: Buffer | string } {
  const e = sampleEvent({ eventId: `fz_${i}`, projectId: PROJECT, type: pick(TYPES) }) as Record<string, unknown>;
  const r = int(16);
  switch (r) {
    case 0: {
      const field = pick(['id', 'event', 'occurredAt', 'company', 'project', 'user', 'currentValue', 'previousValue']);
      let odd = pick(ODD_VALUES);
      // Ids stay unique (outcomes are counted per event id), odd characters and all.
      if (field === 'id' && typeof odd === 'string' && odd.length > 0) odd = `${odd}#${i}`;
      return { kind: 'field type or value', value: JSON.stringify({ ...e, [field]: odd }) };
    }
    case 1:
      return { kind: 'odd event type', value: JSON.stringify({ ...e, event: pick(ODD) }) };
    case 2:
      return {
        kind: 'deep nesting',
        value: JSON.stringify({ ...e, currentValue: 'N' }).replace(
          '"N"',
          `{"x":${nested(pick([10, 60, 70, 500, 5000]))}}`,
        ),
      };
    case 3:
      return { kind: 'huge string', value: JSON.stringify({ ...e, currentValue: { text: 'x'.repeat(int(300_000)) } }) };
    case 4: {
      const text = JSON.stringify(e);
      return { kind: 'truncated JSON', value: text.slice(0, int(text.length)) };
    }
    case 5:
      return { kind: 'random bytes', value: Buffer.from(Array.from({ length: int(200) }, () => int(256))) };
    case 6:
      return {
        kind: 'framed, random schema id',
        value: Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: 4 + int(50) }, () => int(256)))]),
      };
    case 7:
      return {
        kind: 'odd unicode in values',
        value: JSON.stringify({
          ...e,
          currentValue: { title: pick(ODD), [pick(ODD)]: pick(ODD) },
          user: { id: pick(ODD.filter((s) => s.length > 0 && s.length < 200)) },
        }),
      };
    case 8:
      return {
        kind: 'prototype keys',
        value: `{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}},${JSON.stringify(e).slice(1)}`,
      };
    case 9:
      return { kind: 'empty or whitespace', value: pick(['', ' ', '\n\t', 'null', '{}', '[]', '""', '0']) };
    case 10:
      return { kind: 'BOM and padding', value: `\ufeff${JSON.stringify(e)}` };
    case 11:
      return {
        kind: 'for the mutated subscriptions',
        value: JSON.stringify({
          ...e,
          project: { id: pick([SUB_PROJECT, `${SUB_PROJECT}:TODO`]) },
          event: pick([...TYPES, 'X']),
        }),
      };
    case 12:
      return {
        kind: 'big array for a costly filter',
        value: JSON.stringify({
          ...e,
          event: 'COMMENT_CREATED',
          currentValue: { items: Array.from({ length: 20_000 }, (_, k) => k) },
        }),
      };
    default:
      return {
        kind: 'valid variant',
        value: JSON.stringify({ ...e, currentValue: { ...(e.currentValue as object), extra: pick(ODD) } }),
      };
  }
}

// fast-check's generators: one field of a valid event or subscription replaced by a hostile value
// (any string, lone surrogates, NUL and U+202E among them; wrong types; future, past and malformed
// dates; any JSON). Sampled with the run's seed, so FUZZ_SEED replays them too.
const hostileValue = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.constantFrom('\ud800', '\udc00x', 'A\u0000B', '\u202eevil'),
  fc.tuple(fc.string(), fc.constantFrom('\ud83d', '\u0000', '\u202e')).map(([a, b]) => a + b),
  fc.date().map((d) => (Number.isNaN(d.getTime()) ? 'not a date' : d.toISOString())),
  fc.constantFrom('9999-12-31T23:59:59Z', '0000-01-01T00:00:00Z', '2026-02-30T00:00:00Z', '1', '2026-12-04T10:00:00'),
  fc.jsonValue({ maxDepth: 3 }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);
const hostileEvent = fc.record({
  field: fc.constantFrom('id', 'event', 'occurredAt', 'company', 'project', 'user', 'currentValue', 'previousValue'),
  wrapInId: fc.boolean(),
  value: hostileValue,
  // A number as the producer wrote it, which JSON.parse cannot keep: spliced into currentValue's text.
  rawNumber: fc.option(fc.constantFrom('1e400', '-1e400', '12345678901234567890', '9007199254740993', '6.02e23')),
});
const hostileSubscription = fc.record({
  field: fc.constantFrom(
    'id',
    'uid',
    'name',
    'url',
    'secret',
    'previousSecret',
    'previousSecretExpiresAt',
    'enabled',
    'companyId',
    'createdAt',
    'updatedAt',
    'filters',
    'rateLimitPerSecond',
    'ordering',
    'projectIds',
    'events',
  ),
  value: hostileValue,
});

/** An event with one field made hostile by fast-check (ids stay unique: outcomes are counted per event id). */
function fastCheckMutant(i: number, m: typeof hostileEvent extends fc.Arbitrary<infer T> ? T : never): string {
  const e = sampleEvent({ eventId: `fz_${i}`, projectId: PROJECT, type: pick(TYPES) }) as Record<string, unknown>;
  let value: unknown = m.value;
  if (m.field === 'id' && typeof value === 'string') value = `${value}#${i}`;
  if (['company', 'project', 'user'].includes(m.field) && m.wrapInId) value = { id: value };
  const text = JSON.stringify({ ...e, [m.field]: value });
  return m.rawNumber === null ? text : text.replace('"currentValue":{', `"currentValue":{"n":${m.rawNumber},`);
}

/** A mutated subscription record: [key, value]. */
function subscriptionMutant(i: number, url: string): [string, string | null] {
  const id = `fz_sub_${i}`;
  const s = sampleSubscription({
    id,
    url: `${url}/sub/${i}`,
    metadata: { projectIds: [SUB_PROJECT], events: TYPES },
  }) as unknown as Record<string, unknown>;
  switch (int(13)) {
    case 0:
      return [
        id,
        JSON.stringify({
          ...s,
          [pick(['id', 'url', 'enabled', 'metadata', 'secret', 'companyId', 'createdAt', 'filters'])]: pick(ODD_VALUES),
        }),
      ];
    case 1:
      return [
        id,
        JSON.stringify({
          ...s,
          url: pick([
            'http://%ZZ@127.0.0.1/x',
            'ftp://127.0.0.1/',
            'javascript:alert(1)',
            'http://',
            `${url}/p?q=${'%'.repeat(3)}`,
            'http://10.0.0.1/x',
            `http://[::1]:1/x`,
            'http://0x7f.1:1/x',
          ]),
        }),
      ];
    case 2:
      return [
        id,
        JSON.stringify({
          ...s,
          metadata: {
            projectIds: Array.from({ length: 200 + int(50) }, (_, k) => `p${k}`),
            events: Array.from({ length: 200 }, (_, k) => `E${k}`),
          },
        }),
      ];
    case 3:
      return [id, JSON.stringify({ ...s, filters: Array.from({ length: 100 + int(1000) }, () => ({ not: [] })) })];
    case 4:
      return [id, JSON.stringify({ ...s, filters: JSON.parse(nested(20)) })];
    case 5:
      return [
        id,
        JSON.stringify({
          ...s,
          filters: Array.from({ length: 64 }, (_, k) => ({ path: 'currentValue.items', op: 'neq', value: k })),
        }),
      ];
    case 6:
      return [id, JSON.stringify({ ...s, id: `other_${i}` })];
    case 7:
      return [id, JSON.stringify(s).slice(0, int(200))];
    case 8:
      return [id, null];
    case 9:
      return [id, JSON.stringify({ ...s, metadata: { projectIds: [`${SUB_PROJECT}:TODO`], events: ['X'] } })];
    case 10:
      return [id, JSON.stringify({ ...s, name: 'n'.repeat(300_000) })];
    case 11: {
      const [m] = fc.sample(hostileSubscription, { seed: SEED + i, numRuns: 1 });
      const meta = s.metadata as Record<string, unknown>;
      if (m!.field === 'projectIds' || m!.field === 'events')
        return [id, JSON.stringify({ ...s, metadata: { ...meta, [m!.field]: [m!.value] } })];
      return [id, JSON.stringify({ ...s, [m!.field]: m!.value })];
    }
    default:
      return [id, JSON.stringify({ ...s, secret: pick(ODD) })];
  }
}

test(`fuzz: ${COUNT} generated event values and ${SUBSCRIPTIONS} subscriptions through the real stack`, {
  timeout: 600_000,
}, async (t) => {
  t.diagnostic(`seed ${SEED} (FUZZ_SEED=${SEED} replays this run)`);
  const s = await createScenario(t);
  await s.admin.alterConfigs({
    validateOnly: false,
    resources: [
      {
        type: 2,
        name: s.topics.subscriptions,
        configEntries: [{ name: 'max.message.bytes', value: String(2 * 1024 * 1024) }],
      },
    ],
  });
  // Counts distinct deliveries per path; keeps no body (hundreds of thousands of requests).
  const received = new Map<string, Set<string>>();
  const { url: rxUrl } = await serve(t, (req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url ?? '/';
      if (!received.has(path)) received.set(path, new Set());
      received.get(path)!.add(String(req.headers['x-blue-delivery']));
      res.writeHead(200).end();
    });
  });
  const rx = { url: rxUrl };
  await putSubscription(
    s,
    sampleSubscription({ id: 'wh_good', url: `${rx.url}/good`, metadata: { projectIds: [PROJECT], events: TYPES } }),
  );
  // 64 conditions over every element of currentValue.items: the "big array" events exceed its budget.
  const costly = Array.from({ length: 64 }, (_, k) => ({ path: 'currentValue.items', op: 'neq', value: -(k + 1) }));
  await putSubscription(
    s,
    sampleSubscription({
      id: 'wh_costly',
      url: `${rx.url}/costly`,
      metadata: { projectIds: [PROJECT], events: ['COMMENT_CREATED'] },
      filters: costly,
    }),
  );
  const registry = new Registry(s.env.SCHEMA_REGISTRY_URL!);
  let expectedInvalid = 0;
  const subs = Array.from({ length: SUBSCRIPTIONS }, (_, i) => subscriptionMutant(i, rx.url));
  for (const [key, value] of subs) {
    if (value !== null)
      expectedInvalid += await decodeSubscription(Buffer.from(value), key, registry).then(
        () => 0,
        () => 1,
      );
  }
  const sendChunked = async (topic: string, messages: { key: string; value: Buffer | string | null }[]) => {
    // In requests well under the broker's limit.
    for (let i = 0; i < messages.length; ) {
      const batch: typeof messages = [];
      let bytes = 0;
      while (i < messages.length && (batch.length === 0 || bytes + (messages[i]!.value?.length ?? 0) < 800_000)) {
        bytes += messages[i]!.value?.length ?? 0;
        batch.push(messages[i++]!);
      }
      await s.producer.send({ topic, messages: batch });
    }
  };
  await sendChunked(
    s.topics.subscriptions,
    subs.map(([key, value]) => ({ key, value })),
  );
  // Avro framed with the id of another schema (a subscription's) and of the right one.
  const wrongId = await registry.register('webhook-subscription', `${s.topics.events}-wrong-value`);
  const rightId = await registry.register('blue-event', `${s.topics.events}-value`);

  const dlq = await collectTopic(s, s.topics.dlq, (_v, headers) => headers['x-dlq-reason']!);
  const results = await collectTopic(
    s,
    s.topics.results,
    (v) =>
      s.registry.decode(v!) as Promise<{
        eventId: string;
        deliveryId: string;
        attempt: number;
        outcome: string;
        reason: string | null;
      }>,
  );
  // A longer schedule than the tests' default: an endpoint kept busy by the burst diverts
  // deliveries to the retry path, and three quick retries could all find it busy again.
  const d = await startDispatcher(s, { RETRY_SCHEDULE: '1s,2s,5s,10s,20s,30s' });

  const counts = new Map<string, number>();
  const values: { key: string; value: Buffer | string }[] = [];
  const generated = fc.sample(hostileEvent, { seed: SEED, numRuns: Math.ceil(COUNT / 10) });
  let good = 0;
  for (let i = 0; i < COUNT; i++) {
    let kind: string;
    let value: Buffer | string;
    if (i % 10 === 0) {
      kind = 'good';
      value = JSON.stringify(sampleEvent({ eventId: `good_${good++}`, projectId: PROJECT }));
    } else if (i % 10 === 5) {
      kind = 'fast-check field';
      value = fastCheckMutant(i, generated[Math.floor(i / 10)]!);
    } else if (i % 97 === 1) {
      kind = 'avro, wrong schema';
      value = await registry.encode(wrongId, {
        ...sampleSubscription(),
        metadata: { events: [], projectIds: [] },
        filters: null,
      });
    } else if (i % 97 === 2) {
      kind = 'avro, valid';
      value = await registry.encode(rightId, eventToAvro(sampleEvent({ eventId: `fz_${i}`, projectId: PROJECT })));
    } else if (i % 97 === 3) {
      kind = 'avro, truncated';
      const full = await registry.encode(rightId, eventToAvro(sampleEvent({ eventId: `fz_${i}`, projectId: PROJECT })));
      value = full.subarray(0, 5 + int(full.length - 5));
    } else {
      ({ kind, value } = mutant(i));
    }
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    values.push({ key: `k${i % 50}`, value });
  }
  await sendChunked(s.topics.events, values);

  await committedToEnd(s, s.group, s.topics.events, 300_000);
  const m = parseMetrics(await d.metrics());
  const sum = (prefix: string) => [...m].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);
  await waitFor(() => dlq.length === sum('blue_webhooks_events_dead_lettered_total'), {
    what: 'every dead letter read back',
  });
  const unmatched = m.get('blue_webhooks_events_unmatched_total') ?? 0;
  const withOutcome = new Set(results.map((r) => r.eventId));
  await waitFor(() => new Set(results.map((r) => r.eventId)).size + dlq.length + unmatched === COUNT, {
    what: 'every value accounted for',
    timeoutMs: 60_000,
  }).catch((err) => {
    throw new Error(
      `${err.message}: ${withOutcome.size} with outcomes + ${dlq.length} dead letters + ${unmatched} unmatched != ${COUNT}`,
    );
  });

  assert.equal(d.proc.exitCode, null, 'the dispatcher is still running');
  assert.equal(sum('blue_webhooks_consumer_crashes_total'), 0, 'no consumer crashed');
  assert.equal(m.get('blue_webhooks_events_consumed_total'), COUNT);
  // Some may come through the retry path (an endpoint kept busy by the burst): wait for them.
  const goodIds = Array.from({ length: good }, (_, n) => deliveryId(`good_${n}`, 'wh_good'));
  const missing = () => goodIds.filter((id) => !received.get('/good')?.has(id));
  await waitFor(() => missing().length === 0, { what: 'every good event delivered', timeoutMs: 120_000 }).catch(() => {
    const lost = new Set(missing());
    const outcomes = results
      .filter((r) => lost.has(r.deliveryId))
      .map((r) => `${r.deliveryId} ${r.attempt} ${r.outcome} ${r.reason}`);
    assert.deepEqual(missing(), [], `every good event delivered; their outcomes: ${outcomes.join('; ')}`);
  });
  assert.equal(
    sum('blue_webhooks_subscriptions_invalid_total') >= expectedInvalid,
    true,
    `at least the ${expectedInvalid} invalid subscriptions counted`,
  );
  assert.equal(sum('blue_webhooks_internal_errors_total'), 0, 'no input reached an unexpected exception');
  if ((counts.get('big array for a costly filter') ?? 0) > 0)
    assert.ok((m.get('blue_webhooks_filter_budget_exceeded_total') ?? 0) > 0);
  assert.equal((await d.readyz()).status, 200);
  const reasons = new Map<string, number>();
  for (const r of dlq) reasons.set(r, (reasons.get(r) ?? 0) + 1);
  t.diagnostic(`classes: ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  t.diagnostic(
    `ends: ${withOutcome.size} events with outcomes, ${unmatched} matched no webhook, dead letters ${[...reasons].map(([k, n]) => `${k} ${n}`).join(', ')}`,
  );
  t.diagnostic(
    `subscriptions: ${SUBSCRIPTIONS} mutants, ${expectedInvalid} invalid expected, ${sum('blue_webhooks_subscriptions_invalid_total')} counted; filter budget stops ${m.get('blue_webhooks_filter_budget_exceeded_total') ?? 0}; internal errors ${sum('blue_webhooks_internal_errors_total')}`,
  );
});
