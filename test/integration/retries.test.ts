// Durable retries on a compressed schedule (300ms, 600ms, 1s), against real HTTP endpoints.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import type { WebhookResult } from '../../src/results/result.js';
import { decodeRetry, encodeRetry } from '../../src/retries/record.js';
import {
  collectTopic,
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  type Scenario,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { maxRetryLatenessMs } from '../helpers/lateness.js';
import { type Responder, startReceiver } from '../helpers/receiver.js';
import { runScript } from '../helpers/run-script.js';
import { waitFor } from '../helpers/wait.js';

/** Answers each path with its list of statuses in turn (the last one repeats). */
function sequence(plan: Record<string, (number | [number, Record<string, string>])[]>): Responder {
  const seen = new Map<string, number>();
  return (d, res) => {
    const n = seen.get(d.path) ?? 0;
    seen.set(d.path, n + 1);
    const steps = plan[d.path] ?? [200];
    const step = steps[Math.min(n, steps.length - 1)]!;
    const [status, headers] = Array.isArray(step) ? step : [step, {}];
    res.writeHead(status, headers).end();
  };
}

const results = (s: Scenario) =>
  collectTopic(s, s.topics.results, (v) => s.registry.decode(v!) as Promise<WebhookResult>);

test('500, 500, then 200: delivered on the third attempt, with three outcomes', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t, sequence({ '/flaky': [500, 503, 200] }));
  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/flaky` }));
  const out = await results(s);
  await startDispatcher(s);
  await produceEvents(s, [sampleEvent({ eventId: 'evt_r' })]);
  await waitFor(() => out.some((r) => r.outcome === 'DELIVERED'), { what: 'the delivery' });
  assert.deepEqual(
    out.map((r) => [r.attempt, r.outcome, r.httpStatus]),
    [
      [1, 'RETRY_SCHEDULED', 500],
      [2, 'RETRY_SCHEDULED', 503],
      [3, 'DELIVERED', 200],
    ],
  );
  assert.equal(new Set(out.map((r) => r.deliveryId)).size, 1, 'one delivery id across attempts');
  assert.deepEqual(
    rx.deliveries.map((d) => d.headers['x-blue-attempt']),
    ['1', '2', '3'],
  );
  for (const r of out.slice(0, 2)) assert.ok(r.nextAttemptAt! > r.timestamp, 'nextAttemptAt is in the future');
  // The schedule's delays (300 ms, then 600 ms, shortened by at most 10%) separate the attempts.
  const [a, b, c] = rx.deliveries.map((d) => d.receivedAt);
  assert.ok(b! - a! >= 270 && c! - b! >= 540, `gaps ${b! - a!} and ${c! - b!} ms`);
  const late = maxRetryLatenessMs(out);
  t.diagnostic(`longest wait past a scheduled retry time: ${late} ms`);
  assert.ok(late < 1000, `a retry started ${late} ms late`);
});

test('Retry-After is honoured on 429 and 503, up to RETRY_AFTER_MAX_MS', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(
    t,
    sequence({ '/429': [[429, { 'retry-after': '2' }], 200], '/503': [[503, { 'retry-after': '3600' }], 200] }),
  );
  await putSubscription(s, sampleSubscription({ id: 'wh_429', url: `${rx.url}/429` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_503', url: `${rx.url}/503` }));
  const out = await results(s);
  await startDispatcher(s, { RETRY_AFTER_MAX_MS: '3000' });
  await produceEvents(s, [sampleEvent({ eventId: 'evt_ra' })]);
  await waitFor(() => rx.deliveries.length === 4, { what: 'two attempts per endpoint', timeoutMs: 15_000 });
  const gap = (p: string) => rx.at(p)[1]!.receivedAt - rx.at(p)[0]!.receivedAt;
  assert.ok(gap('/429') >= 2000, `429 with Retry-After: 2 waited ${gap('/429')} ms (schedule says 300)`);
  assert.ok(
    gap('/503') >= 3000 && gap('/503') < 10_000,
    `503 with Retry-After: 3600 waited ${gap('/503')} ms (capped at 3000)`,
  );
  await waitFor(() => out.filter((r) => r.outcome === 'DELIVERED').length === 2, { what: 'both delivered' });
});

test('a 400 is final after one attempt', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t, sequence({ '/bad': [400] }));
  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/bad` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_ok', url: `${rx.url}/ok` }));
  const out = await results(s);
  await startDispatcher(s);
  await produceEvents(s, [sampleEvent({ eventId: 'evt_400' })]);
  await waitFor(() => out.length === 2, { what: 'two outcomes' });
  const bad = out.find((r) => r.webhookId === 'wh')!;
  assert.deepEqual([bad.attempt, bad.outcome, bad.httpStatus, bad.reason], [1, 'FAILED', 400, 'final_status']);
  // Well past the whole schedule: still one request.
  await waitFor(() => out.length === 2 && Date.now() - bad.timestamp > 2500, {
    what: 'the schedule to pass',
    timeoutMs: 5000,
  });
  assert.equal(rx.at('/bad').length, 1);
});

test('410 Gone is final and publishes an UNHEALTHY status event with reason gone', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t, sequence({ '/gone': [410] }));
  await putSubscription(s, sampleSubscription({ id: 'wh_gone', url: `${rx.url}/gone` }));
  const out = await results(s);
  const statuses = await collectTopic(
    s,
    s.topics.status,
    (v) => s.registry.decode(v!) as Promise<{ webhookId: string; status: string; reason: string; httpStatus: number }>,
  );
  await startDispatcher(s);
  await produceEvents(s, [sampleEvent({ eventId: 'evt_410' })]);
  await waitFor(() => out.length === 1 && statuses.length === 1, { what: 'the outcome and the status event' });
  assert.deepEqual([out[0]!.outcome, out[0]!.reason, out[0]!.httpStatus], ['FAILED', 'gone', 410]);
  assert.deepEqual(
    [statuses[0]!.webhookId, statuses[0]!.status, statuses[0]!.reason, statuses[0]!.httpStatus],
    ['wh_gone', 'UNHEALTHY', 'gone', 410],
  );
  assert.equal(rx.deliveries.length, 1);
});

test('before each retry the current subscription is read: a new URL is used, a deletion or a disable ends the delivery', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t, sequence({ '/old': [500], '/gone-soon': [500], '/off-soon': [500] }));
  await putSubscription(s, sampleSubscription({ id: 'moved', url: `${rx.url}/old` }));
  await putSubscription(s, sampleSubscription({ id: 'deleted', url: `${rx.url}/gone-soon` }));
  await putSubscription(s, sampleSubscription({ id: 'disabled', url: `${rx.url}/off-soon` }));
  const out = await results(s);
  await startDispatcher(s, { RETRY_SCHEDULE: '2s' });
  await produceEvents(s, [sampleEvent({ eventId: 'evt_chg' })]);
  await waitFor(() => out.length === 3, { what: 'three first attempts' });
  const later = new Date(Date.now() + 1000).toISOString();
  await putSubscription(
    s,
    sampleSubscription({ id: 'moved', url: `${rx.url}/new`, secret: 'rotated', updatedAt: later }),
  );
  await putSubscription(s, { id: 'deleted', value: null });
  await putSubscription(
    s,
    sampleSubscription({ id: 'disabled', url: `${rx.url}/off-soon`, enabled: false, updatedAt: later }),
  );
  await waitFor(() => out.length === 6, { what: 'three second outcomes' });
  const second = (id: string) => out.filter((r) => r.webhookId === id)[1]!;
  assert.deepEqual([second('moved').outcome, second('moved').attempt], ['DELIVERED', 2]);
  assert.equal(rx.at('/new').length, 1);
  assert.ok(rx.at('/new')[0]!.headers['x-blue-signature'], 'signed with the rotated secret');
  assert.deepEqual([second('deleted').outcome, second('deleted').reason], ['FAILED', 'deleted']);
  assert.deepEqual([second('disabled').outcome, second('disabled').reason], ['FAILED', 'disabled']);
  assert.equal(
    rx.at('/gone-soon').length + rx.at('/off-soon').length,
    2,
    'no request after the deletion or the disable',
  );
});

test('exhausted deliveries land in the deliveries DLQ, and the re-drive command delivers them once the endpoint recovers', async (t) => {
  const s = await createScenario(t);
  let healthy = false;
  const rx = await startReceiver(t, (d, res) => res.writeHead(healthy || d.path === '/fine' ? 200 : 500).end());
  await putSubscription(s, sampleSubscription({ id: 'wh_down', url: `${rx.url}/down` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_other', url: `${rx.url}/other` }));
  const dlq = await collectTopic(s, s.topics.deliveriesDlq, (v) => decodeRetry(v));
  const out = await results(s);
  await startDispatcher(s, { RETRY_SCHEDULE: '200ms,200ms' });
  await produceEvents(s, [sampleEvent({ eventId: 'evt_x1' }), sampleEvent({ eventId: 'evt_x2' })]);
  // Two topics, read by two consumers: the dead letters and their outcomes arrive in either order.
  const exhausted = () => out.filter((r) => r.reason === 'exhausted');
  await waitFor(() => dlq.length === 4 && exhausted().length === 4, {
    what: '4 dead letters (2 events × 2 webhooks) and their outcomes',
  });
  assert.deepEqual(new Set(dlq.map((r) => r.webhookId)), new Set(['wh_down', 'wh_other']));
  assert.ok(exhausted().every((r) => r.attempt === 3 && r.outcome === 'FAILED'));
  assert.equal(dlq[0]!.event.currentValue !== null, true, 'the whole delivery is kept');

  // Selecting by time: nothing was dead-lettered in the future, everything before now.
  const env = { ...process.env, ...s.env, RETRY_SCHEDULE: '200ms,200ms' };
  const future = await runScript(
    'src/tools/redrive.ts',
    ['--from', new Date(Date.now() + 3_600_000).toISOString(), '--dry-run'],
    env,
  );
  assert.deepEqual(JSON.parse(future.output), {
    scanned: 4,
    matched: 0,
    redriven: 0,
    unreadable: 0,
    withoutEvent: 0,
    dryRun: true,
  });
  const past = await runScript('src/tools/redrive.ts', ['--to', new Date().toISOString(), '--dry-run'], env);
  assert.deepEqual(JSON.parse(past.output), {
    scanned: 4,
    matched: 4,
    redriven: 0,
    unreadable: 0,
    withoutEvent: 0,
    dryRun: true,
  });

  healthy = true;
  const before = rx.deliveries.length;
  const cli = await runScript('src/tools/redrive.ts', ['--webhook', 'wh_down'], env);
  assert.equal(cli.code, 0, cli.output);
  assert.deepEqual(JSON.parse(cli.output), {
    scanned: 4,
    matched: 2,
    redriven: 2,
    unreadable: 0,
    withoutEvent: 0,
    dryRun: false,
  });
  await waitFor(() => out.filter((r) => r.webhookId === 'wh_down' && r.outcome === 'DELIVERED').length === 2, {
    what: 're-driven deliveries',
  });
  assert.equal(rx.deliveries.length - before, 2, 'only the named webhook was re-driven');
  assert.deepEqual(
    new Set(rx.deliveries.slice(before).map((d) => d.headers['x-blue-delivery'])),
    new Set(dlq.filter((r) => r.webhookId === 'wh_down').map((r) => r.deliveryId)),
    'with the same delivery ids',
  );
});

test('a retry record written twice (a producer retry after a broker failure) makes one request, and the copy is counted', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_1', url: `${rx.url}/one` }));
  const d = await startDispatcher(s);
  const { occurredAtMs: _, ...event } = { ...sampleEvent({ eventId: 'evt_copied' }), occurredAtMs: 0 };
  const record = encodeRetry({
    v: 1,
    deliveryId: 'msg_copied',
    webhookId: 'wh_1',
    attempt: 2,
    retry: 1,
    dueAt: Date.now(),
    firstAttemptAt: Date.now(),
    eventTimestampMs: Date.now(),
    event,
  });
  // Byte-identical copies, as a retried produce request leaves them; then a re-drive of the same
  // delivery (a new dueAt), which is not a copy and must be attempted.
  const topic = `${s.topics.retryPrefix}.300ms`;
  await s.producer.send({
    topic,
    messages: [
      { key: 'wh_1', value: record },
      { key: 'wh_1', value: record },
    ],
  });
  const redriven = JSON.parse(record.toString());
  await s.producer.send({
    topic,
    messages: [{ key: 'wh_1', value: encodeRetry({ ...redriven, dueAt: redriven.dueAt + 1 }) }],
  });

  await waitFor(() => rx.deliveries.length >= 2, { what: 'the retry and the re-drive' });
  await waitFor(
    async () => parseMetrics(await d.metrics()).get('blue_webhooks_duplicates_skipped_total{source="retry"}') === 1,
    { what: 'the copy to be counted as skipped' },
  );
  assert.equal(rx.deliveries.length, 2, 'the copy made no request');
  assert.deepEqual(
    rx.deliveries.map((r) => [r.headers['x-blue-delivery'], r.headers['x-blue-attempt']]),
    [
      ['msg_copied', '2'],
      ['msg_copied', '2'],
    ],
  );
});
