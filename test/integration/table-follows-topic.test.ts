// The subscription table follows the topic, whatever its records claim: a record a producer
// botched (a string cut in half, a clock running ahead) neither holds the table nor locks a webhook.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import {
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

const LONE = '\ud83d'; // half an emoji
const events = ['TODO_CREATED'];

test('a subscription with a lone surrogate is refused, counted and inert; the table completes and every other webhook gets its events', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(
    s,
    sampleSubscription({ id: 'good', url: `${rx.url}/good`, metadata: { events, projectIds: ['p'] } }),
  );
  // Written as JSON, the lone surrogate travels as the escape "\ud83d" (what a producer cutting an emoji sends).
  await putSubscription(
    s,
    sampleSubscription({ id: 'cut', url: `${rx.url}/cut`, metadata: { events, projectIds: ['p', `p${LONE}`] } }),
  );
  // Ids that differ only in such a character would share one Redis key.
  await putSubscription(
    s,
    sampleSubscription({ id: `cut${LONE}`, url: `${rx.url}/cut2`, metadata: { events, projectIds: ['p'] } }),
  );
  const d = await startDispatcher(s);
  assert.equal((await d.readyz()).status, 200, 'the table completed');

  await produceEvents(
    s,
    Array.from({ length: 30 }, (_, i) => sampleEvent({ eventId: `e${i}`, projectId: 'p', type: 'TODO_CREATED' })),
  );
  await waitFor(() => rx.at('/good').length === 30, { what: '30 deliveries to the good webhook', timeoutMs: 30_000 });
  const m = parseMetrics(await d.metrics());
  assert.equal(
    m.get('blue_webhooks_subscriptions_invalid_total{reason="MALFORMED_UNICODE"}'),
    2,
    'both cut records counted (a lone surrogate in a project id, and in the id itself)',
  );
  assert.equal(m.get('blue_webhooks_subscription_table_complete'), 1);
  assert.equal(rx.at('/cut').length + rx.at('/cut2').length, 0, 'the refused webhooks match nothing');
  const line = d.logs.find((l) => l.code === 'MALFORMED_UNICODE');
  assert.ok(line, 'the refusal is logged');
  assert.ok(
    d.logs.some(
      (l) => l.webhookId === 'cut' && /metadata\.projectIds\[1\] is not well-formed Unicode/.test(String(l.reason)),
    ),
    'the log says which field',
  );
  assert.ok(!JSON.stringify(d.logs).includes('whsec-demo-secret'), 'never with the secret');

  // A valid record written after the cut one replaces it.
  await putSubscription(
    s,
    sampleSubscription({ id: 'cut', url: `${rx.url}/cut`, metadata: { events, projectIds: ['p'] } }),
  );
  await waitFor(
    async () => {
      await produceEvents(s, [sampleEvent({ eventId: `after_${Date.now()}`, projectId: 'p', type: 'TODO_CREATED' })]);
      return rx.at('/cut').length > 0;
    },
    { what: 'the fixed webhook to receive', timeoutMs: 30_000, intervalMs: 500 },
  );
});

test('a record dated 9999 does not lock its webhook: a later disable, URL change, delete and re-create each apply', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  const d = await startDispatcher(s);
  const sub = (overrides: Parameters<typeof sampleSubscription>[0]) =>
    sampleSubscription({ id: 'wh', metadata: { events, projectIds: ['p'] }, ...overrides });
  let n = 0;
  const send = async (count: number) => {
    n += count;
    const batch = Array.from({ length: count }, (_, i) =>
      sampleEvent({ eventId: `${n}_${i}`, projectId: 'p', type: 'TODO_CREATED' }),
    );
    await produceEvents(s, batch);
  };
  /** Waits until `count` events in all matched no webhook (the matcher skips a disabled or deleted one). */
  const unmatched = (count: number) =>
    waitFor(async () => parseMetrics(await d.metrics()).get('blue_webhooks_events_unmatched_total') === count, {
      what: `${count} events unmatched`,
      timeoutMs: 30_000,
    });
  const delivered = (path: string, count: number) =>
    waitFor(() => rx.at(path).length === count, { what: `${count} deliveries to ${path}`, timeoutMs: 30_000 });

  await putSubscription(s, sub({ url: `${rx.url}/old`, updatedAt: '9999-12-31T23:59:59.999Z' }));
  await send(10);
  await delivered('/old', 10);

  await putSubscription(s, sub({ url: `${rx.url}/old`, enabled: false }));
  await send(30);
  await unmatched(30);
  assert.equal(rx.at('/old').length, 10, 'none of 30 delivered after the user disabled it');

  await putSubscription(s, sub({ url: `${rx.url}/new` }));
  await send(30);
  await delivered('/new', 30);
  assert.equal(rx.at('/old').length, 10, 'all 30 went to the new URL');

  await putSubscription(s, { id: 'wh', value: null });
  await send(5);
  await unmatched(35);
  await putSubscription(s, sub({ url: `${rx.url}/again`, updatedAt: '2001-01-01T00:00:00Z' }));
  await send(5);
  await delivered('/again', 5);
  assert.deepEqual([rx.at('/old').length, rx.at('/new').length], [10, 30], 're-created at once after a delete');
});
