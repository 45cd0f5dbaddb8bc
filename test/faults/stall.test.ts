// A stall cannot hide: a delivery that never ends (here an endpoint that never answers, with
// timeouts longer than the stall timeout) shows in consumer_lag and oldest_unfinished_seconds,
// is logged with its event id, and after STALL_TIMEOUT_MS its event is dead-lettered as STALLED
// and the partition moves on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import {
  collectTopic,
  committedToEnd,
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { serve, startReceiver } from '../helpers/receiver.js';
import { runScript } from '../helpers/run-script.js';
import { waitFor } from '../helpers/wait.js';

test('a delivery stuck past STALL_TIMEOUT_MS is visible, logged, dead-lettered as STALLED, and the partition commits past it', async (t) => {
  const s = await createScenario(t, { partitions: 1 });
  const rx = await startReceiver(t);
  const { url: stuckUrl } = await serve(t, (req) => req.resume()); // never answers
  await putSubscription(
    s,
    sampleSubscription({
      id: 'wh_stuck',
      url: `${stuckUrl}/stuck`,
      metadata: { projectIds: ['proj_stuck'], events: ['TODO_CREATED'] },
    }),
  );
  await putSubscription(s, sampleSubscription({ id: 'wh_ok', url: `${rx.url}/ok` }));
  const dlq = await collectTopic(s, s.topics.dlq, (value, headers) => ({ value, headers }));
  const d = await startDispatcher(s, {
    STALL_TIMEOUT_MS: '10s',
    DELIVERY_TIMEOUT_MS: '120s',
    DELIVERY_HEADERS_TIMEOUT_MS: '120s',
    DELIVERY_BODY_TIMEOUT_MS: '120s',
  });
  await produceEvents(s, [
    sampleEvent({ eventId: 'evt_stuck', projectId: 'proj_stuck' }),
    sampleEvent({ eventId: 'evt_ok' }),
  ]);
  await waitFor(() => rx.at('/ok').length === 1, { what: 'the event behind the stuck one delivered' });

  // While stuck: the committed offset is held back, and the metrics say so.
  const labels = `{topic="${s.topics.events}",partition="0"}`;
  const seen = await waitFor(
    async () => {
      const m = parseMetrics(await d.metrics());
      const lag = m.get(`blue_webhooks_consumer_lag${labels}`) ?? 0;
      const age = m.get(`blue_webhooks_oldest_unfinished_seconds${labels}`) ?? 0;
      return lag >= 2 && age >= 1 && { lag, age };
    },
    { what: 'consumer_lag and oldest_unfinished_seconds to show the stuck offset', timeoutMs: 9000 },
  );
  t.diagnostic(`while stuck: consumer_lag ${seen.lag}, oldest_unfinished_seconds ${seen.age.toFixed(1)}`);

  await waitFor(() => dlq.length === 1, { what: 'the stuck event dead-lettered', timeoutMs: 20_000 });
  assert.equal(dlq[0]!.headers['x-dlq-reason'], 'STALLED');
  assert.match(dlq[0]!.headers['x-dlq-error']!, /unfinished for \d+ s/);
  assert.ok(dlq[0]!.value!.toString().includes('"evt_stuck"'), 'the original event, to be re-driven');
  const line = d.logs.find((l) => String(l.msg).startsWith('partition stalled'));
  assert.ok(line, 'a log line');
  assert.deepEqual([line.id, line.offset, line.partition, line.topic], ['evt_stuck', 0, 0, s.topics.events]);
  await committedToEnd(s, s.group, s.topics.events);
  const m = parseMetrics(await d.metrics());
  assert.equal(m.get('blue_webhooks_stalls_total{consumer="events"}'), 1);
  assert.equal(m.get('blue_webhooks_events_dead_lettered_total{reason="STALLED"}'), 1);
  await waitFor(async () => parseMetrics(await d.metrics()).get(`blue_webhooks_consumer_lag${labels}`) === 0, {
    what: 'consumer_lag back to 0',
    timeoutMs: 15_000,
  });
});

test('an event dead-lettered as STALLED under too short a STALL_TIMEOUT_MS is re-driven after the config change, and delivered', async (t) => {
  const s = await createScenario(t, { partitions: 1 });
  let hanging = true;
  const received: string[] = [];
  const { url } = await serve(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (hanging) return; // the endpoint is slow today: it never answers
      received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')).currentValue.id);
      res.writeHead(200).end();
    });
  });
  await putSubscription(s, sampleSubscription({ id: 'wh_slow', url: `${url}/slow` }));
  const dlq = await collectTopic(s, s.topics.dlq, (value, headers) => ({ value, headers }));
  const timeouts = {
    DELIVERY_TIMEOUT_MS: '120s',
    DELIVERY_HEADERS_TIMEOUT_MS: '120s',
    DELIVERY_BODY_TIMEOUT_MS: '120s',
  };
  const first = await startDispatcher(s, { STALL_TIMEOUT_MS: '2s', ...timeouts });
  await produceEvents(s, [sampleEvent({ eventId: 'evt_slow', id: 'todo_slow' })]);
  await waitFor(() => dlq.length === 1, { what: 'the event dead-lettered as STALLED', timeoutMs: 20_000 });
  assert.equal(dlq[0]!.headers['x-dlq-reason'], 'STALLED');
  await committedToEnd(s, s.group, s.topics.events); // so the next replica does not read it again itself
  first.proc.kill('SIGKILL');
  await first.exited;

  // The fix: a longer STALL_TIMEOUT_MS, and an endpoint that answers again.
  hanging = false;
  await startDispatcher(s, timeouts);
  const env = { ...process.env, ...s.env };
  const other = await runScript('src/tools/redrive.ts', ['--events', '--reason', 'INTERNAL_ERROR'], env);
  assert.deepEqual(
    JSON.parse(other.output),
    { scanned: 1, matched: 0, redriven: 0, withoutValue: 0, dryRun: false },
    other.output,
  );
  const dry = await runScript('src/tools/redrive.ts', ['--events', '--reason', 'STALLED', '--dry-run'], env);
  assert.deepEqual(
    JSON.parse(dry.output),
    { scanned: 1, matched: 1, redriven: 0, withoutValue: 0, dryRun: true },
    dry.output,
  );
  const run = await runScript('src/tools/redrive.ts', ['--events', '--reason', 'STALLED'], env);
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(JSON.parse(run.output), { scanned: 1, matched: 1, redriven: 1, withoutValue: 0, dryRun: false });
  await waitFor(() => received.includes('todo_slow'), { what: 'the re-driven event delivered' });
  await committedToEnd(s, s.group, s.topics.events);
  assert.deepEqual(received, ['todo_slow'], 'delivered once');
  const wrong = await runScript('src/tools/redrive.ts', ['--events', '--webhook', 'wh_slow'], env);
  assert.equal(wrong.code, 1);
  assert.match(wrong.output, /leave out --webhook/);
});
