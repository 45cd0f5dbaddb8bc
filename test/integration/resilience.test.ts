// Endpoints that fail, hang or flood: durability, circuit breaking across replicas, response limits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WebhookStatusEvent } from '../../src/breaker/status.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import type { WebhookResult } from '../../src/results/result.js';
import { defer } from '../helpers/defer.js';
import {
  collectTopic,
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { maxRetryLatenessMs } from '../helpers/lateness.js';
import { serve, startReceiver } from '../helpers/receiver.js';
import { deleteKeys, serviceRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

test('retries pending while every replica is stopped and Redis is flushed are all delivered after restart', async (t) => {
  const s = await createScenario(t);
  let healthy = false;
  const rx = await startReceiver(t, (_d, res) => res.writeHead(healthy ? 200 : 503).end());
  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/hook` }));
  const out = await collectTopic(s, s.topics.results, (v) => s.registry.decode(v!) as Promise<WebhookResult>);
  const env = { RETRY_SCHEDULE: '3s,3s', CB_FAILURE_THRESHOLD: '1000' };
  const first = await startDispatcher(s, env);
  await produceEvents(
    s,
    Array.from({ length: 20 }, (_, i) => sampleEvent({ eventId: `dur_${i}` })),
  );
  await waitFor(() => out.filter((r) => r.outcome === 'RETRY_SCHEDULED').length === 20, {
    what: '20 scheduled retries',
  });
  first.proc.kill('SIGTERM');
  assert.equal(await first.exited, 0);

  const redis = serviceRedis();
  defer(t, () => redis.quit());
  await deleteKeys(redis, s.redisPrefix);
  healthy = true;
  await startDispatcher(s, env);
  await waitFor(() => out.filter((r) => r.outcome === 'DELIVERED').length === 20, {
    what: '20 deliveries after restart',
    timeoutMs: 30_000,
  });
  const delivered = new Set(out.filter((r) => r.outcome === 'DELIVERED').map((r) => r.deliveryId));
  assert.equal(delivered.size, 20);
  assert.deepEqual(
    new Set(out.filter((r) => r.outcome === 'DELIVERED').map((r) => r.attempt)),
    new Set([2]),
    'each delivered at its first retry',
  );
});

test('the circuit opens after the threshold, lets only probes through, closes on recovery; two replicas agree', async (t) => {
  const s = await createScenario(t);
  let down = true;
  const rx = await startReceiver(t, (_d, res) => res.writeHead(down ? 500 : 200).end());
  await putSubscription(s, sampleSubscription({ id: 'wh_cb', url: `${rx.url}/hook` }));
  const out = await collectTopic(s, s.topics.results, (v) => s.registry.decode(v!) as Promise<WebhookResult>);
  const statuses = await collectTopic(s, s.topics.status, (v) => s.registry.decode(v!) as Promise<WebhookStatusEvent>);
  const env = {
    CB_FAILURE_THRESHOLD: '3',
    CB_PROBE_INTERVAL_MS: '1000',
    RETRY_SCHEDULE: Array(30).fill('250ms').join(','),
  };
  const a = await startDispatcher(s, env);
  const b = await startDispatcher(s, env);
  await produceEvents(
    s,
    Array.from({ length: 12 }, (_, i) => sampleEvent({ eventId: `cb_${i}` })),
  );

  await waitFor(() => statuses.some((x) => x.status === 'UNHEALTHY'), { what: 'the UNHEALTHY status event' });
  const openedAt = Date.now();
  for (const d of [a, b]) {
    await waitFor(async () => parseMetrics(await d.metrics()).get('blue_webhooks_unhealthy_endpoints') === 1, {
      what: 'both replicas to see it open',
    });
  }
  // While open, only probes reach the endpoint: one per second across both replicas.
  await waitFor(() => out.filter((r) => r.reason === 'circuit_open').length >= 12, {
    what: 'deliveries held back by the open circuit',
  });
  await waitFor(() => Date.now() - openedAt > 3500, {
    what: 'three and a half seconds of open circuit',
    timeoutMs: 10_000,
  });
  const during = rx.deliveries.filter((d) => d.receivedAt > openedAt + 300 && d.receivedAt <= openedAt + 3500).length;
  assert.ok(during >= 2 && during <= 4, `requests while open: ${during} (probes at 1/s)`);

  down = false;
  await waitFor(() => statuses.some((x) => x.status === 'HEALTHY'), { what: 'the HEALTHY status event' });
  await waitFor(() => new Set(out.filter((r) => r.outcome === 'DELIVERED').map((r) => r.deliveryId)).size === 12, {
    what: 'every event delivered after recovery',
  });
  for (const d of [a, b]) {
    await waitFor(async () => parseMetrics(await d.metrics()).get('blue_webhooks_unhealthy_endpoints') === 0, {
      what: 'both replicas to see it closed',
    });
  }
  const late = maxRetryLatenessMs(out);
  t.diagnostic(`${out.length} outcomes over two replicas; longest wait past a scheduled retry time: ${late} ms`);
  assert.ok(late < 1000, `a retry started ${late} ms late`);
  // One status event per change, though two replicas were recording failures.
  assert.deepEqual(
    statuses.map((x) => [x.webhookId, x.status, x.reason]),
    [
      ['wh_cb', 'UNHEALTHY', 'circuit_opened'],
      ['wh_cb', 'HEALTHY', 'circuit_closed'],
    ],
  );
});

test('UNHEALTHY for DISABLE_AFTER: one disable_recommended status event from two replicas; the service edits no subscription', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t, (_d, res) => res.writeHead(500).end());
  await putSubscription(s, sampleSubscription({ id: 'wh_dead', url: `${rx.url}/hook` }));
  const statuses = await collectTopic(s, s.topics.status, (v) => s.registry.decode(v!) as Promise<WebhookStatusEvent>);
  const env = { CB_FAILURE_THRESHOLD: '3', DISABLE_AFTER: '2s', RETRY_SCHEDULE: Array(30).fill('500ms').join(',') };
  await startDispatcher(s, env);
  await startDispatcher(s, env);
  await produceEvents(
    s,
    Array.from({ length: 5 }, (_, i) => sampleEvent({ eventId: `dead_${i}` })),
  );
  await waitFor(() => statuses.some((x) => x.reason === 'disable_recommended'), {
    what: 'the disable_recommended status event',
    timeoutMs: 20_000,
  });
  const opened = statuses.find((x) => x.reason === 'circuit_opened')!;
  const recommended = statuses.find((x) => x.reason === 'disable_recommended')!;
  t.diagnostic(
    `recommended ${recommended.timestamp - opened.timestamp} ms after the circuit opened (DISABLE_AFTER 2 s)`,
  );
  assert.ok(recommended.timestamp - opened.timestamp >= 2000, 'not before DISABLE_AFTER');
  // Both replicas look every second; a few more seconds must not bring a second one.
  const seen = statuses.length;
  await waitFor(() => Date.now() - recommended.timestamp > 3000, { what: 'three more seconds', timeoutMs: 10_000 });
  assert.deepEqual(
    statuses.map((x) => [x.webhookId, x.status, x.reason]),
    [
      ['wh_dead', 'UNHEALTHY', 'circuit_opened'],
      ['wh_dead', 'UNHEALTHY', 'disable_recommended'],
    ],
    `${statuses.length - seen} more status events`,
  );
  const records = await collectTopic(s, s.topics.subscriptions, (v) => v);
  await waitFor(() => records.length >= 1, { what: 'the subscription record' });
  assert.equal(
    records.length,
    1,
    'only the record the test wrote: Blue decides, the service never writes the compacted topic',
  );
});

test('a response of several hundred MB neither bloats memory nor outlives the attempt deadline', async (t) => {
  const s = await createScenario(t);
  const HUGE = 400 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let sent = 0;
  const { url } = await serve(t, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-length': String(HUGE) });
    const pump = () => {
      while (sent < HUGE && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  await putSubscription(s, sampleSubscription({ id: 'wh_huge', url: `${url}/huge` }));
  const out = await collectTopic(s, s.topics.results, (v) => s.registry.decode(v!) as Promise<WebhookResult>);
  const d = await startDispatcher(s, { DELIVERY_TIMEOUT_MS: '5000', RETRY_SCHEDULE: 'none' });
  const rss = async () => parseMetrics(await d.metrics()).get('blue_webhooks_process_resident_memory_bytes')!;
  const before = await rss();
  await produceEvents(
    s,
    Array.from({ length: 5 }, (_, i) => sampleEvent({ eventId: `huge_${i}` })),
  );
  await waitFor(() => out.length === 5, { what: '5 outcomes', timeoutMs: 30_000 });
  const after = await rss();
  for (const r of out) {
    assert.equal(r.outcome, 'DELIVERED');
    assert.ok(r.durationMs < 5000, `attempt took ${r.durationMs} ms`);
    assert.equal(r.responseSnippet!.length, 1024, 'the first 1 KB');
  }
  t.diagnostic(
    `receiver pushed ${(sent / 1048576).toFixed(1)} MB; RSS ${(before / 1048576).toFixed(0)} -> ${(after / 1048576).toFixed(0)} MB; slowest attempt ${Math.max(...out.map((r) => r.durationMs))} ms`,
  );
  assert.ok(sent < HUGE / 4, `the receiver could push only ${(sent / 1048576).toFixed(1)} MB of ${HUGE / 1048576} MB`);
  assert.ok(after - before < 64 * 1024 * 1024, `RSS grew by ${((after - before) / 1048576).toFixed(1)} MB`);
});
