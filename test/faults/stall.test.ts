// A stall cannot hide: a delivery that never ends (here an endpoint that never answers, with
// timeouts longer than the stall timeout) shows in consumer_lag and oldest_unfinished_seconds,
// is logged with its event id, and after STALL_TIMEOUT_MS its event is dead-lettered as STALLED
// and the partition moves on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { collectTopic, committedToEnd, createScenario, parseMetrics, produceEvents, putSubscription, startDispatcher } from '../helpers/dispatcher.js';
import { serve, startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

test('a delivery stuck past STALL_TIMEOUT_MS is visible, logged, dead-lettered as STALLED, and the partition commits past it', async (t) => {
  const s = await createScenario(t, { partitions: 1 });
  const rx = await startReceiver(t);
  const { url: stuckUrl } = await serve(t, (req) => req.resume()); // never answers
  await putSubscription(s, sampleSubscription({ id: 'wh_stuck', url: `${stuckUrl}/stuck`, metadata: { projectIds: ['proj_stuck'], events: ['TODO_CREATED'] } }));
  await putSubscription(s, sampleSubscription({ id: 'wh_ok', url: `${rx.url}/ok` }));
  const dlq = await collectTopic(s, s.topics.dlq, (value, headers) => ({ value, headers }));
  const d = await startDispatcher(s, {
    STALL_TIMEOUT_MS: '10s',
    DELIVERY_TIMEOUT_MS: '120s',
    DELIVERY_HEADERS_TIMEOUT_MS: '120s',
    DELIVERY_BODY_TIMEOUT_MS: '120s',
  });
  await produceEvents(s, [sampleEvent({ eventId: 'evt_stuck', projectId: 'proj_stuck' }), sampleEvent({ eventId: 'evt_ok' })]);
  await waitFor(() => rx.at('/ok').length === 1, { what: 'the event behind the stuck one delivered' });

  // While stuck: the committed offset is held back, and the metrics say so.
  const labels = `{topic="${s.topics.events}",partition="0"}`;
  const seen = await waitFor(
    async () => {
      const m = parseMetrics(await d.metrics());
      const lag = m.get(`blue_webhooks_consumer_lag${labels}`) ?? 0;
      const age = m.get(`blue_webhooks_oldest_unfinished_seconds${labels}`) ?? 0;
      return lag >= 2 && age >= 1 && { lag, age };
    },
    { what: 'consumer_lag and oldest_unfinished_seconds to show the stuck offset', timeoutMs: 9000 },
  );
  t.diagnostic(`while stuck: consumer_lag ${seen.lag}, oldest_unfinished_seconds ${seen.age.toFixed(1)}`);

  await waitFor(() => dlq.length === 1, { what: 'the stuck event dead-lettered', timeoutMs: 20_000 });
  assert.equal(dlq[0]!.headers['x-dlq-reason'], 'STALLED');
  assert.match(dlq[0]!.headers['x-dlq-error']!, /unfinished for \d+ s/);
  assert.ok(dlq[0]!.value!.toString().includes('"evt_stuck"'), 'the original event, to be re-driven');
  const line = d.logs.find((l) => String(l.msg).startsWith('partition stalled'));
  assert.ok(line, 'a log line');
  assert.deepEqual([line.id, line.offset, line.partition, line.topic], ['evt_stuck', 0, 0, s.topics.events]);
  await committedToEnd(s, s.group, s.topics.events);
  const m = parseMetrics(await d.metrics());
  assert.equal(m.get('blue_webhooks_stalls_total{consumer="events"}'), 1);
  assert.equal(m.get('blue_webhooks_events_dead_lettered_total{reason="STALLED"}'), 1);
  await waitFor(async () => parseMetrics(await d.metrics()).get(`blue_webhooks_consumer_lag${labels}`) === 0, {
    what: 'consumer_lag back to 0',
    timeoutMs: 15_000,
  });
});
