// Records too large for one produce request: a burst whose retry records all share one partition,
// and events of 1.5 MB and 3 MB for an endpoint that fails. Before, the first wedged every
// delivery behind a MESSAGE_TOO_LARGE retried forever; now each ends as documented.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import {
  collectTopic,
  committedToEnd,
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  type Scenario,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

const BURST = Number(process.env.BURST_EVENTS ?? 30_000);

async function allowLargeEvents(s: Scenario, bytes: number) {
  await s.admin.alterConfigs({
    validateOnly: false,
    resources: [
      {
        type: 2 /* TOPIC */,
        name: s.topics.events,
        configEntries: [{ name: 'max.message.bytes', value: String(bytes) }],
      },
    ],
  });
}

test(`a burst of ${BURST} events of ~2 KB into one webhook drains completely`, async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_burst', url: `${rx.url}/burst` }));
  const d = await startDispatcher(s, { RETRY_SCHEDULE: '1s,2s,5s,10s,30s,30s' });
  const events = Array.from({ length: BURST }, (_, i) => sampleEvent({ eventId: `burst_${i}` }));
  const t0 = performance.now();
  await produceEvents(s, events);
  await waitFor(() => rx.pairs().size === BURST, { what: `${BURST} deliveries`, timeoutMs: 240_000, intervalMs: 250 });
  const seconds = (performance.now() - t0) / 1000;
  await committedToEnd(s, s.group, s.topics.events, 60_000);
  const m = parseMetrics(await d.metrics());
  assert.equal(m.get('blue_webhooks_deliveries_total{outcome="DELIVERED",event_type="TODO_CREATED"}'), BURST);
  const diverted = m.get('blue_webhooks_retries_scheduled_total{reason="endpoint_busy"}') ?? 0;
  t.diagnostic(
    `${BURST} events, ${rx.deliveries.length} requests, ${diverted} diverted to the retry topic; all delivered in ${seconds.toFixed(1)} s`,
  );
});

test('events of 1.5 MB (compressible) and 3 MB (not) for a failing endpoint end as documented; good events commit past them', async (t) => {
  const s = await createScenario(t, { partitions: 1 });
  await allowLargeEvents(s, 4 * 1024 * 1024);
  const rx = await startReceiver(t, (d, res) => res.writeHead(d.path === '/fail' ? 500 : 200).end());
  await putSubscription(
    s,
    sampleSubscription({
      id: 'wh_fail',
      url: `${rx.url}/fail`,
      metadata: { projectIds: ['proj_large'], events: ['TODO_UPDATED'] },
    }),
  );
  await putSubscription(s, sampleSubscription({ id: 'wh_ok', url: `${rx.url}/ok` }));
  const results = await collectTopic(
    s,
    s.topics.results,
    (v) => s.registry.decode(v!) as Promise<Record<string, unknown>>,
  );
  const dlq = await collectTopic(
    s,
    s.topics.deliveriesDlq,
    (v) => JSON.parse(v!.toString()) as Record<string, unknown>,
  );
  await startDispatcher(s);

  const large = (eventId: string, filler: string) => {
    const e = sampleEvent({ eventId, type: 'TODO_UPDATED', projectId: 'proj_large' });
    return { ...e, currentValue: { ...e.currentValue!, text: filler } };
  };
  const compressible = 'Collect the numbers from every team and draft the agenda. '.repeat(26_000); // ~1.5 MB
  const incompressible = randomBytes(2_300_000).toString('base64'); // ~3 MB
  await produceEvents(s, [sampleEvent({ eventId: 'good_before' })]);
  await s.producer.send({
    topic: s.topics.events,
    messages: [{ key: 'a', value: JSON.stringify(large('evt_1_5mb', compressible)) }],
  });
  await s.producer.send({
    topic: s.topics.events,
    messages: [{ key: 'b', value: JSON.stringify(large('evt_3mb', incompressible)) }],
  });
  await produceEvents(s, [sampleEvent({ eventId: 'good_after' })]);

  await committedToEnd(s, s.group, s.topics.events, 60_000);
  const final = (eventId: string) => results.find((r) => r.eventId === eventId && r.outcome === 'FAILED');
  await waitFor(() => final('evt_1_5mb') && final('evt_3mb'), {
    what: 'a final outcome for both large events',
    timeoutMs: 60_000,
  });
  // 1.5 MB: its retry records fit once compressed, so it is retried along the schedule.
  assert.equal(final('evt_1_5mb')!.reason, 'exhausted');
  const sizes = rx.at('/fail').map((r) => r.body.length);
  assert.equal(
    sizes.filter((n) => n > 1_000_000 && n < 2_000_000).length,
    4,
    'the 1.5 MB event: first attempt and 3 retries',
  );
  assert.equal(sizes.filter((n) => n > 3_000_000).length, 1, 'the 3 MB event: one attempt');
  // 3 MB: no retry record can hold it; a final outcome at once, and a dead letter that points at it.
  assert.equal(final('evt_3mb')!.reason, 'too_large');
  await waitFor(() => dlq.length === 2, { what: 'two dead letters' });
  const whole = dlq.find((r) => (r.event as { id: string }).id === 'evt_1_5mb')!;
  assert.equal(
    (whole.event as { currentValue: { text: string } }).currentValue.text.length,
    compressible.length,
    'kept whole',
  );
  const pointer = dlq.find((r) => (r.event as { id: string }).id === 'evt_3mb')!;
  assert.equal(pointer.omitted, 'too_large');
  assert.deepEqual(pointer.source, { topic: s.topics.events, partition: 0, offset: '2' });
  assert.equal(rx.at('/ok').length, 2, 'the good events on the same partition are delivered');
});
