// The dispatcher end to end: events and subscriptions in, signed deliveries and outcomes out.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
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

test('delivers Blue payloads signed both ways, for JSON and Avro events and subscriptions', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  const secret = 'wh-secret-äö-123';
  const json = sampleSubscription({ id: 'wh_json', url: `${rx.url}/json`, secret });
  const avro = sampleSubscription({ id: 'wh_avro', url: `${rx.url}/avro`, secret: null });
  await putSubscription(s, json, 'json');
  await putSubscription(s, avro, 'avro');
  const results = await collectTopic(
    s,
    s.topics.results,
    (v) => s.registry.decode(v!) as Promise<Record<string, unknown>>,
  );
  const d = await startDispatcher(s);

  const e1 = sampleEvent({ eventId: 'evt_json_1' });
  const e2 = sampleEvent({ eventId: 'evt_avro_1', type: 'TODO_MOVED', previous: { id: 'old', title: 'before' } });
  await produceEvents(s, [e1], 'json');
  await produceEvents(s, [e2], 'avro');
  await waitFor(() => rx.deliveries.length >= 4, { what: '4 deliveries' });

  for (const r of rx.deliveries) {
    const body = JSON.parse(r.body);
    const sent = r.path === '/json' ? json : avro;
    const event = body.event === 'TODO_CREATED' ? e1 : e2;
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(String(r.headers['user-agent']), /^blue-webhooks\/\d+\.\d+\.\d+/);
    assert.equal(r.headers['x-blue-event'], event.event);
    assert.equal(r.headers['webhook-id'], r.headers['x-blue-delivery']);
    assert.deepEqual(Object.keys(body), [
      'event',
      'webhook',
      'currentValue',
      'previousValue',
      'company',
      'project',
      'user',
    ]);
    assert.deepEqual(body.currentValue, event.currentValue);
    assert.deepEqual(body.previousValue, event.previousValue);
    assert.deepEqual(body.company, event.company);
    assert.deepEqual(body.project, event.project);
    assert.deepEqual(body.user, event.user);
    assert.deepEqual(body.webhook, {
      id: sent.id,
      uid: sent.uid,
      name: sent.name,
      url: sent.url,
      status: sent.status,
      enabled: sent.enabled,
      metadata: sent.metadata,
      createdById: sent.createdById,
      createdAt: sent.createdAt,
      updatedAt: sent.updatedAt,
    });
    assert.ok(!r.body.includes(secret), 'the secret never appears in the body');
    assert.ok(!('secret' in body.webhook));
    if (sent.secret) {
      // Blue's documented Node snippet.
      const expected = crypto.createHmac('sha256', secret).update(r.body).digest('hex');
      assert.equal(r.headers['x-blue-signature'], expected);
      // A verifier nobody here wrote: the standardwebhooks package, keyed with the secret's UTF-8 bytes.
      const wh = new Webhook(Buffer.from(secret, 'utf8'), { format: 'raw' });
      assert.doesNotThrow(() => wh.verify(r.body, r.headers as Record<string, string>));
      assert.throws(() => wh.verify(`${r.body} `, r.headers as Record<string, string>));
    } else {
      assert.equal(r.headers['x-blue-signature'], undefined);
      assert.equal(r.headers['webhook-signature'], undefined);
    }
  }
  // Delivery ids are per (event, webhook) pair.
  assert.equal(new Set(rx.deliveries.map((r) => r.headers['x-blue-delivery'])).size, 4);

  await waitFor(() => results.length >= 4, { what: '4 outcomes' });
  for (const r of results) {
    assert.equal(r.outcome, 'DELIVERED');
    assert.equal(r.httpStatus, 200);
    assert.equal(r.attempt, 1);
  }
  const m = parseMetrics(await d.metrics());
  assert.equal(m.get('blue_webhooks_deliveries_total{outcome="DELIVERED",event_type="TODO_CREATED"}'), 2);
  assert.equal(m.get('blue_webhooks_deliveries_total{outcome="DELIVERED",event_type="TODO_MOVED"}'), 2);
  assert.equal(m.get('blue_webhooks_events_consumed_total'), 2);
  assert.ok(!d.logs.some((l) => JSON.stringify(l).includes(secret)), 'the secret never appears in logs');
});

test('a burst of 1,000 events to two webhooks: every pair delivered once (deliveries/s and latency are reported)', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_a', url: `${rx.url}/a` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_b', url: `${rx.url}/b` }));
  // One origin takes the whole burst; should it fall behind, deliveries are deferred, never lost.
  await startDispatcher(s, { RETRY_SCHEDULE: '1s,2s,5s,10s,20s' });
  const N = 1000;
  const events = Array.from({ length: N }, (_, i) => sampleEvent({ eventId: `burst_${i}` }));
  const t0 = Date.now();
  for (const e of events) (e.currentValue as Record<string, unknown>).sentAt = Date.now();
  await produceEvents(s, events);
  await waitFor(() => rx.deliveries.length >= 2 * N, { what: `${2 * N} deliveries`, timeoutMs: 60_000 });
  const seconds = (Math.max(...rx.deliveries.map((r) => r.receivedAt)) - t0) / 1000;
  const latencies = rx.deliveries
    .map((r) => r.receivedAt - JSON.parse(r.body).currentValue.sentAt)
    .sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.floor((p / 100) * (latencies.length - 1))];
  t.diagnostic(
    `${((2 * N) / seconds).toFixed(0)} deliveries/s; event-to-receipt p50 ${pct(50)} ms, p99 ${pct(99)} ms (produced as one burst)`,
  );
  assert.equal(rx.pairs().size, 2 * N);
  assert.equal(rx.deliveries.length, 2 * N, 'no duplicates');
});
