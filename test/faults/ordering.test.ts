// Per-entity ordering: 100 entities × 20 updates, an endpoint failing 20% of first attempts, two
// replicas and a SIGKILL mid-run. With ordering "entity", every entity's accepted deliveries come
// in the order produced; without it, they do not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import {
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  type Scenario,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { flakyEndpoint } from '../helpers/flaky-endpoint.js';
import { waitFor } from '../helpers/wait.js';

const ENTITIES = 100;
const UPDATES = 20;
const TOTAL = ENTITIES * UPDATES;

/** Entities whose accepted updates are not 0, 1, ..., UPDATES - 1 in that order. */
function outOfOrder(accepted: Map<string, number[]>): string[] {
  return [...accepted].filter(([, updates]) => updates.some((u, i) => u !== i)).map(([entity]) => entity);
}

/** Update u of every entity, then update u + 1: the entities progress side by side, each keyed by its id. */
async function produceUpdates(s: Scenario, project: string, tag: string, onRound?: (u: number) => Promise<void>) {
  for (let u = 0; u < UPDATES; u++) {
    const events = Array.from({ length: ENTITIES }, (_, e) => {
      const event = sampleEvent({
        eventId: `${tag}_${e}_${u}`,
        id: `${tag}_todo_${e}`,
        projectId: project,
        type: 'TODO_MOVED',
      });
      (event.currentValue as Record<string, unknown>).update = u;
      return event;
    });
    await produceEvents(s, events);
    await onRound?.(u);
  }
}

test('ordering "entity": each entity\'s accepted deliveries follow the produced order through failures, retries and a SIGKILL', async (t) => {
  const s = await createScenario(t);
  const plain = await flakyEndpoint(t);
  const calm = await flakyEndpoint(t);
  const ordered = await flakyEndpoint(t);
  const events = ['TODO_MOVED'];
  await putSubscription(
    s,
    sampleSubscription({ id: 'plain', url: plain.url, metadata: { events, projectIds: ['proj_plain'] } }),
  );
  await putSubscription(
    s,
    sampleSubscription({
      id: 'calm',
      url: calm.url,
      ordering: 'entity',
      metadata: { events, projectIds: ['proj_calm'] },
    }),
  );
  // In Avro: the field goes through the registry too.
  await putSubscription(
    s,
    sampleSubscription({
      id: 'ordered',
      url: ordered.url,
      ordering: 'entity',
      metadata: { events, projectIds: ['proj_ordered'] },
    }),
    'avro',
  );
  // The circuit breaker stays out of it: one failure in five, at a few hundred deliveries a second
  // on two replicas, often makes 5 consecutive failures within the second it takes replicas to
  // share their successes; while open, every entity's line would wait for a probe instead.
  const env = { RETRY_SCHEDULE: '1s,2s,5s,10s,20s,30s', CB_FAILURE_THRESHOLD: '1000000', CB_FAILURE_RATE: '1' };
  const a = await startDispatcher(s, env);
  const b = await startDispatcher(s, env);

  // Without ordering: the same workload, for the throughput reference and to show the check bites.
  let t0 = performance.now();
  await produceUpdates(s, 'proj_plain', 'plain');
  await waitFor(() => plain.count() === TOTAL, {
    what: `${TOTAL} accepted (ordering none)`,
    timeoutMs: 120_000,
    intervalMs: 100,
  });
  const plainSeconds = (performance.now() - t0) / 1000;
  // With ordering, no kill: the throughput it costs.
  t0 = performance.now();
  await produceUpdates(s, 'proj_calm', 'calm');
  await waitFor(() => calm.count() === TOTAL, {
    what: `${TOTAL} accepted (ordering entity)`,
    timeoutMs: 120_000,
    intervalMs: 100,
  });
  const calmSeconds = (performance.now() - t0) / 1000;

  // With ordering, and replica a killed once a third of the updates have been produced.
  t0 = performance.now();
  await produceUpdates(s, 'proj_ordered', 'ordered', async (u) => {
    if (u === Math.floor(UPDATES / 3)) {
      await waitFor(() => ordered.count() >= TOTAL / 5, {
        what: 'a fifth accepted before the kill',
        timeoutMs: 60_000,
      });
      a.proc.kill('SIGKILL');
      await a.exited;
    }
  });
  await waitFor(() => ordered.count() === TOTAL, {
    what: `${TOTAL} accepted (ordering entity)`,
    timeoutMs: 120_000,
    intervalMs: 100,
  });
  const orderedSeconds = (performance.now() - t0) / 1000;

  const m = parseMetrics(await b.metrics());
  t.diagnostic(
    `ordering none: ${(TOTAL / plainSeconds).toFixed(0)} accepted/s, ${outOfOrder(plain.accepted).length} of ${ENTITIES} entities out of order; ` +
      `ordering entity: ${(TOTAL / calmSeconds).toFixed(0)} accepted/s (on / off ${(plainSeconds / calmSeconds).toFixed(2)}), ` +
      `with a SIGKILL: ${(TOTAL / orderedSeconds).toFixed(0)} accepted/s; ` +
      `replica b: held ${m.get('blue_webhooks_ordered_total{step="held"}') ?? 0}, released ${m.get('blue_webhooks_ordered_total{step="released"}') ?? 0}, ` +
      `repaired ${m.get('blue_webhooks_ordered_total{step="repaired"}') ?? 0}, stale ${m.get('blue_webhooks_ordered_total{step="stale"}') ?? 0}`,
  );
  assert.ok(
    outOfOrder(plain.accepted).length > 0,
    'without ordering, failed first attempts land after later updates (the check can fail)',
  );
  assert.deepEqual(outOfOrder(calm.accepted), [], 'every entity in produced order');
  assert.deepEqual(outOfOrder(ordered.accepted), [], 'every entity in produced order, through the SIGKILL');
  assert.equal(ordered.accepted.size, ENTITIES);
  assert.ok((m.get('blue_webhooks_ordered_total{step="held"}') ?? 0) > 0, 'later updates were held behind failed ones');
});
