// Bad input never stops the service and nothing is lost: undecodable events go to the DLQ with
// their original bytes and the reason, the good events around them are delivered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import {
  collectTopic,
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

test('garbage, unknown schema ids, invalid JSON and missing fields land in the DLQ; good events are delivered', async (t) => {
  const s = await createScenario(t, { partitions: 1 }); // one partition: bad and good events interleave in order
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/hook` }));
  const dlq = await collectTopic(s, s.topics.dlq, (value, headers) => ({ value, headers }));
  const d = await startDispatcher(s);

  const unknownSchema = Buffer.concat([Buffer.from([0, 0x7f, 0xff, 0xff, 0x00]), Buffer.from('body')]);
  const missing = { ...sampleEvent(), project: undefined };
  const bad: [string, Buffer][] = [
    ['DECODE_FAILED', Buffer.from([0xde, 0xad, 0xbe, 0xef])],
    ['UNKNOWN_SCHEMA', unknownSchema],
    ['INVALID_JSON', Buffer.from('{"id": "evt_x", ')],
    ['INVALID_EVENT', Buffer.from(JSON.stringify(missing))],
  ];
  await produceEvents(s, [sampleEvent({ eventId: 'good_1' })]);
  for (const [, value] of bad)
    await s.producer.send({ topic: s.topics.events, messages: [{ key: 'k', value, headers: { origin: 'test' } }] });
  await produceEvents(s, [sampleEvent({ eventId: 'good_2' }), sampleEvent({ eventId: 'good_3' })], 'avro');

  await waitFor(() => dlq.length === 4 && rx.deliveries.length === 3, { what: '4 dead letters and 3 deliveries' });
  for (const [reason, value] of bad) {
    const letter = dlq.find((x) => x.value?.equals(value));
    assert.ok(letter, `${reason}: the original bytes are kept`);
    assert.equal(letter.headers['x-dlq-reason'], reason);
    assert.equal(letter.headers['x-dlq-source-topic'], s.topics.events);
    assert.equal(letter.headers.origin, 'test', 'original headers are kept');
    assert.ok(letter.headers['x-dlq-error']!.length > 0);
  }
  const m = parseMetrics(await d.metrics());
  for (const [reason] of bad) {
    assert.equal(m.get(`blue_webhooks_decode_errors_total{reason="${reason}"}`), 1, reason);
    assert.equal(m.get(`blue_webhooks_events_dead_lettered_total{reason="${reason}"}`), 1, reason);
  }
  // Their offsets are committed like any other.
  await waitFor(
    async () => {
      const [o] = await s.admin.fetchOffsets({ groupId: s.group, topics: [s.topics.events] });
      return o!.partitions[0]!.offset === '7';
    },
    { what: 'offsets committed past the bad events' },
  );
});

test('failed, refused and slow-to-fail endpoints get outcomes; other webhooks are unaffected', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t, (d, res) => {
    if (d.path === '/500') res.writeHead(500).end('boom');
    else if (d.path === '/400') res.writeHead(400).end('{"error":"bad payload"}');
    else if (d.path === '/redirect') res.writeHead(302, { location: 'http://169.254.169.254/' }).end();
    else res.writeHead(204).end();
  });
  for (const p of ['500', '400', 'redirect', 'ok'])
    await putSubscription(s, sampleSubscription({ id: `wh_${p}`, url: `${rx.url}/${p}` }));
  // Internal and not allow-listed for this dispatcher (it allows 127.0.0.1 and ::1 only).
  await putSubscription(s, sampleSubscription({ id: 'wh_metadata', url: 'http://169.254.169.254/latest/meta-data' }));
  await putSubscription(s, sampleSubscription({ id: 'wh_private', url: 'http://10.0.0.1:1/x' }));
  const results = await collectTopic(
    s,
    s.topics.results,
    (v) => s.registry.decode(v!) as Promise<Record<string, unknown>>,
  );
  // No retries here: every outcome is final after one attempt.
  const d = await startDispatcher(s, { RETRY_SCHEDULE: 'none' });
  await produceEvents(s, [sampleEvent({ eventId: 'evt_f' })]);
  await waitFor(() => results.length === 6, { what: '6 outcomes' });

  const by = (id: string) => results.find((r) => r.webhookId === id)!;
  assert.deepEqual([by('wh_ok').outcome, by('wh_ok').httpStatus], ['DELIVERED', 204]);
  assert.deepEqual(
    [by('wh_500').outcome, by('wh_500').httpStatus, by('wh_500').responseSnippet, by('wh_500').reason],
    ['FAILED', 500, 'boom', 'exhausted'],
  );
  assert.deepEqual(
    [by('wh_400').outcome, by('wh_400').httpStatus, by('wh_400').reason],
    ['FAILED', 400, 'final_status'],
  );
  assert.deepEqual([by('wh_redirect').outcome, by('wh_redirect').httpStatus], ['FAILED', 302]);
  for (const id of ['wh_metadata', 'wh_private']) {
    assert.equal(by(id).outcome, 'FAILED');
    assert.equal(by(id).reason, 'refused');
    assert.equal((by(id).error as { code: string }).code, 'TARGET_REFUSED');
  }
  // The redirect was not followed, and nothing was sent to the refused targets.
  assert.deepEqual(rx.deliveries.map((r) => r.path).sort(), ['/400', '/500', '/ok', '/redirect']);
  const m = parseMetrics(await d.metrics());
  assert.equal(m.get('blue_webhooks_deliveries_total{outcome="FAILED",event_type="TODO_CREATED"}'), 5);
  assert.equal(m.get('blue_webhooks_deliveries_total{outcome="DELIVERED",event_type="TODO_CREATED"}'), 1);
});
