// A subscription's own headers (an `Authorization` its receiver asks for): sent with every
// delivery, never shown in a payload nor a log; a name the service or HTTP owns, or a value a
// header cannot carry, makes the subscription invalid with a reason.
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

const TOKEN = 'Bearer tok_8c1f2e0d9b7a6c5e';

test("a subscription's headers arrive on every delivery, from JSON and Avro records, and never in the payload or the logs", async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(
    s,
    sampleSubscription({ id: 'wh_json', url: `${rx.url}/json`, headers: { Authorization: TOKEN, 'X-Tenant': 'acme' } }),
  );
  await putSubscription(
    s,
    sampleSubscription({ id: 'wh_avro', url: `${rx.url}/avro`, headers: { Authorization: TOKEN, 'X-Tenant': 'acme' } }),
    'avro',
  );
  await putSubscription(s, sampleSubscription({ id: 'wh_none', url: `${rx.url}/none` }), 'avro');
  const d = await startDispatcher(s, { LOG_LEVEL: 'debug' });
  await produceEvents(s, [sampleEvent({ eventId: 'e1' }), sampleEvent({ eventId: 'e2' })]);
  await waitFor(() => rx.deliveries.length === 6, { what: '6 deliveries' });

  for (const r of rx.deliveries) {
    const expected = r.path === '/none' ? [undefined, undefined] : [TOKEN, 'acme'];
    assert.deepEqual([r.headers.authorization, r.headers['x-tenant']], expected, r.path);
    assert.ok(!r.body.includes('tok_8c1f'), 'the payload never carries a header value');
    assert.ok(r.headers['webhook-signature'], 'signed as ever');
  }
  const logged = d.logs.map((l) => JSON.stringify(l)).join('\n');
  assert.ok(d.logs.length > 0);
  assert.ok(!logged.includes('tok_8c1f'), 'no log line carries a header value');
});

test('a header name the service or HTTP owns, or a value a header cannot carry, makes the subscription invalid (INVALID_HEADER)', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  const refused: Record<string, Record<string, unknown>> = {
    host: { Host: 'example.com' },
    contentType: { 'Content-Type': 'text/plain' },
    transferEncoding: { 'Transfer-Encoding': 'chunked' },
    connection: { Connection: 'close' },
    webhookId: { 'webhook-id': 'forged' },
    blueSignature: { 'X-Blue-Signature': 'forged' },
    traceparent: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    crlf: { 'X-Split': `ok\r\nX-Injected: ${TOKEN}` },
    nul: { 'X-Nul': 'a\u0000b' },
    notToken: { 'X Space': 'v' },
    notString: { 'X-Number': 7 },
    tooMany: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`X-H${i}`, 'v'])),
    tooLong: { 'X-Long': 'v'.repeat(4096) },
  };
  for (const [id, headers] of Object.entries(refused)) {
    await putSubscription(
      s,
      sampleSubscription({ id, url: `${rx.url}/${id}`, headers: headers as Record<string, string> }),
    );
  }
  await putSubscription(s, sampleSubscription({ id: 'fine', url: `${rx.url}/fine`, headers: { 'X-Fine': 'yes' } }));
  const d = await startDispatcher(s);
  await produceEvents(s, [sampleEvent({ eventId: 'e1' })]);
  await waitFor(() => rx.deliveries.length === 1, { what: 'the valid webhook delivered' });
  await waitFor(
    async () => {
      const m = parseMetrics(await d.metrics());
      return m.get('blue_webhooks_events_consumed_total') === 1 && m.get('blue_webhooks_deliveries_in_flight') === 0;
    },
    { what: 'the event handled' },
  );
  assert.deepEqual(
    rx.deliveries.map((r) => [r.path, r.headers['x-fine']]),
    [['/fine', 'yes']],
  );
  const m = parseMetrics(await d.metrics());
  assert.equal(
    m.get('blue_webhooks_subscriptions_invalid_total{reason="INVALID_HEADER"}'),
    Object.keys(refused).length,
  );
  for (const id of Object.keys(refused)) {
    assert.ok(
      d.logs.some((l) => l.webhookId === id && /headers/.test(String(l.reason))),
      `${id}: logged with its reason`,
    );
  }
  assert.ok(
    !d.logs
      .map((l) => JSON.stringify(l))
      .join('\n')
      .includes('tok_8c1f'),
    'a refused value is never quoted',
  );
});
