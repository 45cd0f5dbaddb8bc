// Matching: events × subscriptions across every rule produce exactly the expected deliveries.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import type { Subscription } from '../../src/subscriptions/subscription.js';
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

test('each matching rule and filter operator selects exactly the expected (event, webhook) pairs', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  const P1 = 'proj_1';
  const P2 = 'proj_2';
  const C1 = 'co_1';
  const C2 = 'co_2';
  const sub = (id: string, o: Partial<Subscription> = {}) =>
    sampleSubscription({
      id,
      url: `${rx.url}/${id}`,
      companyId: C1,
      metadata: { events: ['TODO_CREATED', 'TODO_MOVED'], projectIds: [P1] },
      ...o,
    });
  const f = (filters: unknown) => ({ filters: filters as Subscription['filters'] });
  const subs = [
    sub('all'),
    sub('comments', { metadata: { events: ['COMMENT_CREATED'], projectIds: [P1] } }),
    sub('project2', { metadata: { events: ['TODO_CREATED'], projectIds: [P2] } }),
    sub('company2', { companyId: C2, metadata: { events: ['TODO_CREATED'], projectIds: [P1] } }),
    sub('disabled', { enabled: false }),
    sub('f_eq', f({ path: 'currentValue.todoList.id', op: 'eq', value: 'list_a' })),
    sub('f_neq', f({ path: 'currentValue.todoList.id', op: 'neq', value: 'list_a' })),
    sub('f_in', f({ path: 'currentValue.todoTags.id', op: 'in', value: ['tag_x', 'tag_z'] })),
    sub('f_nin', f({ path: 'currentValue.todoTags.id', op: 'nin', value: ['tag_x'] })),
    sub('f_exists', f({ path: 'previousValue.todoListId', op: 'exists' })),
    sub('f_contains', f({ path: 'currentValue.title', op: 'contains', value: 'Launch' })),
    sub('f_gt', f({ path: 'currentValue.todoCustomFields[id=cf_points].value', op: 'gt', value: 5 })),
    sub('f_lt', f({ path: 'currentValue.todoCustomFields[id=cf_points].value', op: 'lt', value: 5 })),
    sub(
      'f_any',
      f({
        any: [
          { path: 'currentValue.todoUsers.id', op: 'eq', value: 'u_boss' },
          { path: 'event', op: 'eq', value: 'TODO_MOVED' },
        ],
      }),
    ),
  ];
  for (const x of subs) await putSubscription(s, x);
  // An invalid filter makes only its own webhook inert.
  await s.producer.send({
    topic: s.topics.subscriptions,
    messages: [
      {
        key: 'f_bad',
        value: JSON.stringify({ ...sub('f_bad'), filters: { path: 'currentValue.x', op: 'resembles', value: 1 } }),
      },
    ],
  });

  const events = [
    sampleEvent({
      eventId: 'e1',
      projectId: P1,
      companyId: C1,
      listId: 'list_a',
      tagIds: ['tag_x'],
      title: 'Launch plan',
      customFields: [{ id: 'cf_points', value: 8 }],
    }),
    sampleEvent({
      eventId: 'e2',
      type: 'TODO_MOVED',
      projectId: P1,
      companyId: C1,
      listId: 'list_b',
      tagIds: ['tag_y'],
      customFields: [{ id: 'cf_points', value: 3 }],
      previous: { todoListId: 'list_a' },
    }),
    sampleEvent({ eventId: 'e3', type: 'COMMENT_CREATED', projectId: P1, companyId: C1 }),
    sampleEvent({ eventId: 'e4', projectId: P2, companyId: C1 }),
    sampleEvent({ eventId: 'e5', projectId: P1, companyId: C2, userIds: ['u_boss'] }),
    sampleEvent({ eventId: 'e6', type: 'TODO_DELETED', projectId: P1, companyId: C1 }),
  ];
  const expected = [
    'e1>all',
    'e2>all',
    'e3>comments',
    'e4>project2',
    'e5>company2',
    'e1>f_eq',
    'e2>f_neq',
    'e1>f_in',
    'e2>f_nin',
    'e2>f_exists',
    'e1>f_contains',
    'e1>f_gt',
    'e2>f_lt',
    'e2>f_any',
  ].sort();

  const results = await collectTopic(s, s.topics.results, (v) => s.registry.decode(v!) as Promise<{ eventId: string }>);
  const d = await startDispatcher(s);
  await produceEvents(s, events);
  await waitFor(() => results.length >= expected.length, { what: `${expected.length} outcomes` });
  // Every event is consumed and finished, so anything extra would have arrived by now.
  await waitFor(
    async () => {
      const m = parseMetrics(await d.metrics());
      return (
        m.get('blue_webhooks_events_consumed_total') === events.length &&
        m.get('blue_webhooks_deliveries_in_flight') === 0
      );
    },
    { what: 'all events handled' },
  );

  const got = rx.deliveries.map((r) => `${eventIdOf(r.headers, results)}>${r.path.slice(1)}`).sort();
  assert.deepEqual(got, expected);
  assert.equal(results.length, expected.length);
  const m = parseMetrics(await d.metrics());
  assert.equal(m.get('blue_webhooks_subscriptions_invalid_total{reason="INVALID_FILTER"}'), 1);
  assert.ok(
    d.logs.some((l) => l.webhookId === 'f_bad' && String(l.reason).includes('"op" must be one of')),
    'the bad filter is logged with its reason',
  );
});

// The delivery id header ties a request to its outcome record, which names the event.
function eventIdOf(headers: Record<string, unknown>, results: { eventId: string; deliveryId?: string }[]): string {
  const r = results.find((x) => x.deliveryId === headers['x-blue-delivery']);
  return r?.eventId ?? '?';
}
