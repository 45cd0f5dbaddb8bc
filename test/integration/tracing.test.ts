// Traces: a traceparent in an event's Kafka headers continues through consume → match → attempt →
// outcome, reaches the webhook as its traceparent header, and the spans reach an OTLP collector.
// Without a collector, a valid traceparent is passed on as received.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { createScenario, putSubscription, startDispatcher } from '../helpers/dispatcher.js';
import { serve, startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}

/** OTLP/JSON ids are hex; some serializers send base64: either way, hex. */
const hex = (id: string | undefined) =>
  id === undefined || /^[0-9a-f]*$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');

test('a traceparent from Kafka continues into the webhook request, with consume → match → attempt → outcome spans at the collector', async (t) => {
  const s = await createScenario(t);
  const spans: OtlpSpan[] = [];
  const { url: collector } = await serve(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        for (const rs of body.resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? [])
            for (const sp of ss.spans ?? [])
              spans.push({
                ...sp,
                traceId: hex(sp.traceId)!,
                spanId: hex(sp.spanId)!,
                parentSpanId: hex(sp.parentSpanId),
              });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_traced', url: `${rx.url}/hook` }));
  await startDispatcher(s, { OTEL_EXPORTER_OTLP_ENDPOINT: collector });
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parentId = '00f067aa0ba902b7';
  const event = sampleEvent({ eventId: 'evt_traced' });
  await s.producer.send({
    topic: s.topics.events,
    messages: [
      { key: 'todo_traced', value: JSON.stringify(event), headers: { traceparent: `00-${traceId}-${parentId}-01` } },
    ],
  });
  const delivery = await waitFor(() => rx.deliveries[0], { what: 'the delivery' });
  const sent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(delivery.headers.traceparent));
  assert.ok(sent, `a traceparent header on the webhook request: ${delivery.headers.traceparent}`);
  assert.equal(sent[1], traceId, 'the same trace');

  const byName = (name: string) => spans.find((sp) => sp.name === name && sp.traceId === traceId);
  await waitFor(() => ['consume', 'match', 'attempt', 'outcome'].every(byName), {
    what: 'the four spans at the collector',
    timeoutMs: 30_000,
  });
  const [consume, match, attempt, outcome] = ['consume', 'match', 'attempt', 'outcome'].map((n) => byName(n)!);
  assert.equal(consume!.parentSpanId, parentId, 'consume continues the producer span');
  assert.equal(match!.parentSpanId, consume!.spanId);
  assert.equal(attempt!.parentSpanId, consume!.spanId);
  assert.equal(outcome!.parentSpanId, attempt!.spanId);
  assert.equal(sent[2], attempt!.spanId, 'the webhook request carries the attempt span');

  // Hostile traceparents (huge, binary, wrong version, all-zero ids) are ignored: a new trace starts.
  const hostile = [
    'x'.repeat(100_000),
    Buffer.from([0xff, 0x00, 0x0a, 0x0d]),
    `ff-${traceId}-${parentId}-01`,
    `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`,
    `00-${traceId}-${parentId}-01-extra\r\n`,
  ];
  await s.producer.send({
    topic: s.topics.events,
    messages: hostile.map((traceparent, i) => ({
      key: `todo_h${i}`,
      value: JSON.stringify(sampleEvent({ eventId: `evt_hostile_${i}` })),
      headers: { traceparent },
    })),
  });
  await waitFor(() => rx.deliveries.length === 1 + hostile.length, {
    what: 'the events with hostile traceparents delivered',
  });
  for (const d of rx.deliveries.slice(1)) {
    const fresh = /^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$/.exec(String(d.headers.traceparent));
    assert.ok(fresh, `a valid traceparent: ${String(d.headers.traceparent).slice(0, 80)}`);
    assert.notEqual(fresh[1], traceId);
  }
});

test('without OTEL_EXPORTER_OTLP_ENDPOINT there is no provider, and a valid traceparent is passed on unchanged (W3C Trace Context); a malformed one is not', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_plain', url: `${rx.url}/hook` }));
  await startDispatcher(s);
  const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const sent = [
    valid,
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // an all-zero trace id
    `${valid}\r\nx-injected: 1`,
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  ];
  await s.producer.send({
    topic: s.topics.events,
    messages: sent.map((traceparent, i) => ({
      key: `todo_${i}`,
      value: JSON.stringify(sampleEvent({ eventId: `evt_plain_${i}` })),
      headers: { traceparent },
    })),
  });
  await waitFor(() => rx.deliveries.length === sent.length, { what: `${sent.length} deliveries` });
  const received = rx.deliveries.map((d) => d.headers.traceparent).filter((h) => h !== undefined);
  assert.deepEqual(received, [valid], 'only the valid one, unchanged');
});
