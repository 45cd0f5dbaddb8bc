// Poison records: odd events, subscriptions and retry records interleaved with good ones. Every
// record gets an end (outcome, dead letter or invalid-subscription count), the good ones are
// delivered, and the committed offsets reach the end of every partition.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import {
  collectTopic,
  committedToEnd,
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

test('poison events and subscriptions end as dead letters or invalid counts; good events around them are delivered and committed', async (t) => {
  const s = await createScenario(t, { partitions: 1 }); // one partition: poison and good events interleave in order
  const rx = await startReceiver(t);
  const good = sampleSubscription({ id: 'wh_good', url: `${rx.url}/good` });
  await putSubscription(s, good);
  // Passed validation before, then threw URIError at delivery and left its event unfinished.
  await putSubscription(
    s,
    sampleSubscription({ id: 'wh_bad_userinfo', url: `http://%ZZ@127.0.0.1:${rx.port}/userinfo` }),
  );
  // 200,000 index entries: crashed the table consumer in a loop, so no replica became ready.
  const projectIds = Array.from({ length: 200 }, (_, i) => `proj_${i}`);
  const events = Array.from({ length: 1000 }, (_, i) => `EVENT_${i}`);
  await putSubscription(
    s,
    sampleSubscription({ id: 'wh_huge', url: `${rx.url}/huge`, metadata: { projectIds, events } }),
  );
  // 1,000 nodes, no condition: accepted before, since only conditions were counted.
  await putSubscription(
    s,
    sampleSubscription({
      id: 'wh_nodes',
      url: `${rx.url}/nodes`,
      filters: Array.from({ length: 1000 }, () => ({ not: [] })),
    }),
  );
  // Index keys were ambiguous: project "P:TODO" + event "X" and project "P" + event "TODO:X" shared one.
  await putSubscription(
    s,
    sampleSubscription({ id: 'wh_colon', url: `${rx.url}/colon`, metadata: { projectIds: ['P:TODO'], events: ['X'] } }),
  );
  const dlq = await collectTopic(s, s.topics.dlq, (value, headers) => ({ value, headers }));
  const d = await startDispatcher(s);

  const deep = `${'{"a":'.repeat(10_000)}{}${'}'.repeat(10_000)}`;
  const deepEvent = JSON.stringify(sampleEvent({ eventId: 'evt_deep' })).replace(
    /"currentValue":\{.*\},"previousValue"/,
    `"currentValue":${deep},"previousValue"`,
  );
  const crlf = JSON.stringify({ ...sampleEvent({ eventId: 'evt_crlf' }), event: 'TODO_CREATED\r\nx-injected: 1' });
  const send = (value: string | Buffer) => s.producer.send({ topic: s.topics.events, messages: [{ key: 'k', value }] });
  await produceEvents(s, [sampleEvent({ eventId: 'good_1' })]);
  await send(deepEvent);
  await produceEvents(s, [{ ...sampleEvent({ eventId: 'colon_wrong', type: 'TODO:X' }), project: { id: 'P' } }]);
  await produceEvents(s, [{ ...sampleEvent({ eventId: 'colon_right', type: 'X' }), project: { id: 'P:TODO' } }]);
  await send(crlf);
  await produceEvents(s, [sampleEvent({ eventId: 'good_2' })]);
  await send(Buffer.from([0x00, 0x7f, 0xff, 0xfe, 0x01])); // Confluent framing, unknown schema id
  await produceEvents(s, [sampleEvent({ eventId: 'good_3' })], 'avro');

  await committedToEnd(s, s.group, s.topics.events);
  assert.equal(rx.at('/good').length, 3, 'the good events are delivered');
  assert.deepEqual(
    rx.at('/colon').map((r) => JSON.parse(r.body).event),
    ['X'],
    'only the event of project P:TODO, type X',
  );
  for (const p of ['/userinfo', '/huge', '/nodes']) assert.equal(rx.at(p).length, 0, `${p} is inert`);
  await waitFor(() => dlq.length === 3, { what: '3 dead letters' });
  assert.deepEqual(dlq.map((x) => x.headers['x-dlq-reason']).sort(), [
    'INVALID_EVENT',
    'INVALID_EVENT',
    'UNKNOWN_SCHEMA',
  ]);
  assert.match(
    dlq.find((x) => x.value?.toString().includes('"evt_deep"'))!.headers['x-dlq-error']!,
    /nested deeper than 64/,
  );
  const m = parseMetrics(await d.metrics());
  const invalid = [...m]
    .filter(([k]) => k.startsWith('blue_webhooks_subscriptions_invalid_total'))
    .reduce((n, [, v]) => n + v, 0);
  assert.equal(invalid, 3, 'bad user info, too many index pairs, too many filter nodes');
  assert.equal((await d.readyz()).status, 200);
  assert.ok(!d.logs.some((l) => JSON.stringify(l).includes('%ZZ@')), 'URL user info is never logged');
});

test('hostile retry records go to the deliveries DLQ; good ones are delivered; the retry topic is committed to its end', async (t) => {
  const s = await createScenario(t, { partitions: 1 });
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_r', url: `${rx.url}/r` }));
  const dlq = await collectTopic(s, s.topics.deliveriesDlq, (value, headers) => ({ value, headers }));
  const d = await startDispatcher(s);
  const retryTopic = `${s.topics.retryPrefix}.300ms`;
  const record = (o: Record<string, unknown>) => ({
    v: 1,
    deliveryId: 'msg_good',
    webhookId: 'wh_r',
    attempt: 2,
    retry: 1,
    dueAt: Date.now(),
    firstAttemptAt: Date.now(),
    eventTimestampMs: Date.now(),
    event: sampleEvent({ eventId: 'evt_r' }),
    ...o,
  });
  const values = [
    '{"v":1,"deliveryId":',
    JSON.stringify(record({ deliveryId: 'msg_crlf', event: { ...sampleEvent(), event: 'TODO_CREATED\r\nx-evil: 1' } })),
    JSON.stringify(record({ deliveryId: 'msg_no_attempt', attempt: 'two' })),
    JSON.stringify(record({})),
  ];
  await s.producer.send({ topic: retryTopic, messages: values.map((value) => ({ key: 'wh_r', value })) });
  await committedToEnd(s, `${s.group}.retries`, retryTopic);
  await waitFor(() => rx.at('/r').length === 1 && dlq.length === 3, { what: 'one delivery and three dead letters' });
  assert.equal(rx.at('/r')[0]!.headers['x-blue-delivery'], 'msg_good');
  assert.deepEqual(
    dlq.map((x) => x.headers['x-dlq-reason']),
    ['INVALID_RETRY_RECORD', 'INVALID_RETRY_RECORD', 'INVALID_RETRY_RECORD'],
  );
  assert.equal(parseMetrics(await d.metrics()).get('blue_webhooks_deliveries_dead_lettered_total'), 3);
});
