// Process lifecycle: a SIGKILL loses nothing, a SIGTERM loses and duplicates nothing, bad config fails fast.
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
import { runScript } from '../helpers/run-script.js';
import { waitFor } from '../helpers/wait.js';

const EVENTS = 300;
// A receiver that answers after a few milliseconds, so the stream is still flowing when the signal lands.
const slow = (ms: number) => (_d: unknown, res: import('node:http').ServerResponse) => {
  setTimeout(() => res.writeHead(200).end(), ms);
};

test('SIGKILL mid-stream, then a restart: every (event, webhook) pair is received at least once', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t, slow(5));
  await putSubscription(s, sampleSubscription({ id: 'wh_a', url: `${rx.url}/a` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_b', url: `${rx.url}/b` }));
  const env = { MAX_IN_FLIGHT_DELIVERIES: '16' };
  const first = await startDispatcher(s, env);
  await produceEvents(
    s,
    Array.from({ length: EVENTS }, (_, i) => sampleEvent({ eventId: `k_${i}` })),
  );
  await waitFor(() => rx.deliveries.length >= EVENTS / 2, { what: 'half the deliveries' });
  first.proc.kill('SIGKILL');
  assert.equal(await first.exited, 'SIGKILL');
  const atKill = new Set(rx.deliveries.map((r) => r.headers['x-blue-delivery'])).size;
  assert.ok(atKill < EVENTS * 2, 'killed mid-stream');

  await startDispatcher(s, env);
  const unique = () => rx.pairs().size;
  await waitFor(() => unique() === EVENTS * 2, { what: `${EVENTS * 2} distinct pairs`, timeoutMs: 60_000 });
});

test('SIGTERM drains, commits and exits 0; the next replica neither loses nor repeats a delivery', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t, slow(5));
  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/hook` }));
  const env = { MAX_IN_FLIGHT_DELIVERIES: '16' };
  const first = await startDispatcher(s, env);
  await produceEvents(
    s,
    Array.from({ length: EVENTS }, (_, i) => sampleEvent({ eventId: `t_${i}` })),
  );
  await waitFor(() => rx.deliveries.length >= EVENTS / 3, { what: 'a third of the deliveries' });
  first.proc.kill('SIGTERM');
  assert.equal(await first.exited, 0);
  assert.ok(
    first.logs.some((l) => l.msg === 'stopped' && l.unfinished === 0),
    'nothing left unfinished',
  );
  assert.ok(rx.deliveries.length < EVENTS, 'stopped mid-stream');

  const second = await startDispatcher(s, env);
  await waitFor(() => rx.deliveries.length >= EVENTS, { what: `${EVENTS} deliveries`, timeoutMs: 60_000 });
  await waitFor(
    async () => {
      const m = parseMetrics(await second.metrics());
      return (
        m.get('blue_webhooks_deliveries_in_flight') === 0 &&
        (m.get('blue_webhooks_consumer_lag{partition="0"}') ?? 0) === 0
      );
    },
    { what: 'the second replica to go idle' },
  );
  const ids = rx.deliveries.map((r) => r.headers['x-blue-delivery']);
  assert.equal(new Set(ids).size, EVENTS, 'no loss');
  assert.equal(ids.length, EVENTS, 'no duplicate');
});

test('a bad configuration fails fast and names the variable', async () => {
  const { code, output } = await runScript('src/main.ts', [], {
    PATH: process.env.PATH,
    METRICS_PORT: 'ninety',
    KAFKA_BROKERS: 'nohost',
  });
  assert.equal(code, 2);
  assert.match(output, /METRICS_PORT: expected an integer/);
  assert.match(output, /KAFKA_BROKERS: expected host:port/);
});
