// A Kafka broker killed (SIGKILL) and restarted while deliveries are under way: readiness fails
// and names Kafka, the dispatcher stays up, and every (event, webhook) pair is delivered and has
// its DELIVERED outcome on the results topic once the broker is back. Twice: a short outage, and
// one long enough for kafkajs to give up retrying, crash its consumers and restart them.

import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { deliveryId } from '../../src/delivery/payload.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import {
  collectTopic,
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { privateKafka } from '../helpers/private-kafka.js';
import { startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

const CRASHED = 'consumer crashed; kafkajs restarts it';

async function brokerRestart(t: TestContext, outage: 'short' | 'until consumers crash') {
  const broker = await privateKafka(t);
  const s = await createScenario(t, { brokers: broker.brokers });
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_1', url: `${rx.url}/one` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_2', url: `${rx.url}/two` }));
  // A small in-flight bound, so the pipeline is waiting for room (and heartbeating) when the broker
  // dies. A refused heartbeat once aborted such a batch and lost an event taken in (3 runs of 3).
  const d = await startDispatcher(s, { MAX_IN_FLIGHT_DELIVERIES: '40' });
  const pairs = () => rx.pairs().size;

  // Killed while a batch is in flight: some outcomes and commits are not written yet.
  const eventIds = [
    ...Array.from({ length: 300 }, (_, i) => `before_${i}`),
    ...Array.from({ length: 50 }, (_, i) => `after_${i}`),
  ];
  await produceEvents(
    s,
    eventIds.slice(0, 300).map((eventId) => sampleEvent({ eventId })),
  );
  await waitFor(() => rx.deliveries.length >= 20, { what: 'deliveries under way' });
  await broker.kill();
  const deliveredAtKill = pairs();
  const killedAt = Date.now();

  await waitFor(
    async () => {
      const r = await d.readyz();
      return r.status === 503 && r.body.includes('kafka');
    },
    { what: 'readiness to fail naming kafka within seconds', timeoutMs: 10_000 },
  );
  assert.equal(d.proc.exitCode, null, 'still running while the broker is down');

  const notReadyMs = Date.now() - killedAt;
  if (outage === 'until consumers crash') {
    await waitFor(() => d.logs.some((l) => l.msg === CRASHED), {
      what: 'kafkajs to give up and crash a consumer',
      timeoutMs: 120_000,
    });
  }
  await broker.start();
  const restartedAt = Date.now();
  await produceEvents(
    s,
    eventIds.slice(300).map((eventId) => sampleEvent({ eventId })),
  );
  await waitFor(() => pairs() === 700, { what: 'all 700 (event, webhook) pairs delivered', timeoutMs: 120_000 }).catch(
    async (err) => {
      // What the dispatcher was doing, for whoever reads a failed run.
      const ready = await d.readyz().catch((e) => ({ status: 0, body: String(e) }));
      const notable = d.logs.filter((l) => l.level !== 'info' || /consumer|group|table/.test(String(l.msg)));
      const got = rx.pairs();
      const lost = eventIds.filter(
        (e) => !got.has(`/one|${deliveryId(e, 'wh_1')}`) || !got.has(`/two|${deliveryId(e, 'wh_2')}`),
      );
      t.diagnostic(
        `pairs ${pairs()}/700; events not fully delivered: ${lost.join(', ')}; readyz ${ready.status} ${ready.body}`,
      );
      t.diagnostic(
        `metrics:\n${(await d.metrics().catch(() => ''))
          .split('\n')
          .filter((l) => l.startsWith('blue_webhooks_') && !l.includes('_bucket'))
          .join('\n')}`,
      );
      for (const l of notable.slice(-80)) t.diagnostic(JSON.stringify(l).slice(0, 400));
      throw err;
    },
  );
  const caughtUpMs = Date.now() - restartedAt;
  await waitFor(async () => (await d.readyz()).status === 200, { what: 'ready again', timeoutMs: 30_000 });

  const results = await collectTopic(
    s,
    s.topics.results,
    (v) => s.registry.decode(v!) as Promise<Record<string, unknown>>,
  );
  await waitFor(
    () =>
      new Set(results.filter((r) => r.outcome === 'DELIVERED').map((r) => `${r.webhookId}|${r.eventId}`)).size === 700,
    {
      what: 'a DELIVERED outcome for each of the 700 pairs',
      timeoutMs: 60_000,
    },
  );
  const m = parseMetrics(await d.metrics());
  const metric = (name: string) =>
    [...m].filter(([k]) => k.startsWith(`blue_webhooks_${name}`)).reduce((n, [, v]) => n + v, 0);
  t.diagnostic(
    `pairs delivered before the kill: ${deliveredAtKill}/700; requests received: ${rx.deliveries.length}; ` +
      `readiness failed ${notReadyMs} ms after the kill; outage ${restartedAt - killedAt} ms; ` +
      `all delivered ${caughtUpMs} ms after the broker answered again; ` +
      `consumer crashes: ${d.logs.filter((l) => l.msg === CRASHED).length}; ` +
      `retry records skipped as copies: ${metric('duplicates_skipped_total')}; ` +
      `infrastructure retries: ${metric('infrastructure_retries_total')}`,
  );
  // Writes the broker appended but never acknowledged are written again by the producer's retry;
  // copies of retry records must not become second requests.
  assert.equal(rx.deliveries.length, 700, 'one request per pair: no duplicate');
  assert.ok(deliveredAtKill < 700, 'the broker went down while deliveries were still under way');
  assert.equal(d.proc.exitCode, null, 'never exited');
}

test('a short broker outage mid-stream fails readiness, then every pair is delivered with its outcome', (t) =>
  brokerRestart(t, 'short'));

test('a broker outage long enough to crash the consumers: they restart, and every pair is delivered with its outcome', (t) =>
  brokerRestart(t, 'until consumers crash'));
