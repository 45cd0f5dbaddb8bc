// Replay by time range and by event id, through the normal delivery path, with the same delivery ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deliveryId } from '../../src/delivery/payload.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { createScenario, produceEvents, putSubscription, startDispatcher } from '../helpers/dispatcher.js';
import { startReceiver } from '../helpers/receiver.js';
import { runScript } from '../helpers/run-script.js';
import { waitFor } from '../helpers/wait.js';

/** The summary: the last line of the tool's stdout (progress goes to stderr, mixed in here). */
const lastJson = (output: string) => JSON.parse(output.trim().split('\n').at(-1)!);

test('replay: 20 events delivered, then replayed by time range, arrive again with the same webhook-id; --event re-sends one to the webhooks it matches now', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh_r', url: `${rx.url}/r` }));
  await startDispatcher(s);
  // Before the range: delivered, and must not come back.
  await produceEvents(
    s,
    Array.from({ length: 5 }, (_, i) => sampleEvent({ eventId: `before_${i}` })),
  );
  await waitFor(() => rx.deliveries.length === 5, { what: 'the 5 events before the range' });
  const from = new Date();
  await produceEvents(
    s,
    Array.from({ length: 20 }, (_, i) => sampleEvent({ eventId: `in_${i}` })),
  );
  await waitFor(() => rx.deliveries.length === 25, { what: 'the 20 events of the range' });
  const to = new Date();
  const first = new Set(rx.deliveries.slice(5).map((d) => String(d.headers['webhook-id'])));
  const env = { ...process.env, ...s.env };

  const dry = await runScript(
    'src/tools/replay.ts',
    ['--webhook', 'wh_r', '--from', from.toISOString(), '--to', to.toISOString(), '--dry-run'],
    env,
  );
  assert.equal(dry.code, 0, dry.output);
  const drySummary = lastJson(dry.output);
  assert.deepEqual(
    [drySummary.scanned, drySummary.decoded, drySummary.matched, drySummary.queued, drySummary.dryRun],
    [20, 20, 20, 0, true],
  );

  const run = await runScript(
    'src/tools/replay.ts',
    ['--webhook', 'wh_r', '--from', from.toISOString(), '--to', to.toISOString()],
    env,
  );
  assert.equal(run.code, 0, run.output);
  const summary = lastJson(run.output);
  assert.deepEqual([summary.scanned, summary.matched, summary.queued], [20, 20, 20]);
  await waitFor(() => rx.deliveries.length === 45, { what: 'the 20 replayed deliveries' });
  const again = rx.deliveries.slice(25);
  assert.deepEqual(
    new Set(again.map((d) => String(d.headers['webhook-id']))),
    first,
    'the same webhook-ids, none from before the range',
  );

  // A webhook created after the events: --event sends one event to every webhook it matches now.
  await putSubscription(s, sampleSubscription({ id: 'wh_new', url: `${rx.url}/new` }));
  const one = await runScript('src/tools/replay.ts', ['--event', 'in_7', '--from', from.toISOString()], env);
  assert.equal(one.code, 0, one.output);
  assert.equal(lastJson(one.output).queued, 2);
  await waitFor(() => rx.deliveries.length === 47, { what: 'in_7 to both webhooks' });
  const resent = rx.deliveries.slice(45);
  assert.deepEqual(resent.map((d) => d.path).sort(), ['/new', '/r']);
  assert.equal(
    resent.find((d) => d.path === '/r')!.headers['webhook-id'],
    deliveryId('in_7', 'wh_r'),
    'the delivery id of the first time',
  );

  const bad = await runScript(
    'src/tools/replay.ts',
    ['--webhook', 'wh_r', '--from', 'yesterday', '--to', to.toISOString()],
    env,
  );
  assert.equal(bad.code, 1);
  assert.match(bad.output, /--from: expected an ISO-8601 time/);
  const unknown = await runScript(
    'src/tools/replay.ts',
    ['--webhook', 'wh_nobody', '--from', from.toISOString(), '--to', to.toISOString()],
    env,
  );
  assert.equal(unknown.code, 1);
  assert.match(unknown.output, /no webhook wh_nobody/);
});
