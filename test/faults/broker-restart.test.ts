// A Kafka broker killed (SIGKILL) and restarted while deliveries are under way: readiness fails
// and names Kafka, the dispatcher stays up, and every (event, webhook) pair is delivered and has
// its DELIVERED outcome on the results topic once the broker is back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
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

test('a broker restart mid-stream stalls deliveries and fails readiness, then every pair is delivered with its outcome', async (t) => {
  const broker = await privateKafka(t);
  const s = await createScenario(t, { brokers: broker.brokers });
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_1', url: `${rx.url}/one` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_2', url: `${rx.url}/two` }));
  const d = await startDispatcher(s);
  const pairs = () => new Set(rx.deliveries.map((r) => `${r.path}|${r.headers['x-blue-delivery']}`)).size;

  // Killed while a batch is in flight: some outcomes and commits are not written yet.
  await produceEvents(
    s,
    Array.from({ length: 300 }, (_, i) => sampleEvent({ eventId: `before_${i}` })),
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
  await broker.start();
  const restartedAt = Date.now();
  await produceEvents(
    s,
    Array.from({ length: 50 }, (_, i) => sampleEvent({ eventId: `after_${i}` })),
  );
  await waitFor(() => pairs() === 700, { what: 'all 700 (event, webhook) pairs delivered', timeoutMs: 120_000 });
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
  t.diagnostic(
    `pairs delivered before the kill: ${deliveredAtKill}/700; requests received: ${rx.deliveries.length}; ` +
      `readiness failed ${notReadyMs} ms after the kill; all delivered ${caughtUpMs} ms after the broker answered again; ` +
      `consumer crashes: ${d.logs.filter((l) => l.msg === 'consumer crashed; kafkajs restarts it').length}; ` +
      `kafka retries: ${[...m]
        .filter(([k]) => k.includes('infrastructure_retries_total'))
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
  );
  assert.ok(deliveredAtKill < 700, 'the broker went down while deliveries were still under way');
  assert.equal(d.proc.exitCode, null, 'never exited');
});
