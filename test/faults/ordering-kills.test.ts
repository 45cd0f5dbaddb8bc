// Ordering "entity" through SIGKILLs at random moments: three replicas, rounds of 50 entities × 10
// updates, an endpoint failing 20% of first attempts; in each round one replica, chosen at random,
// is killed at a random moment and replaced, at once or once the round is over (two replicas then
// share its partitions meanwhile). Every entity's first accepted deliveries must follow
// the produced order. ORDERING_KILL_ROUNDS sets the rounds (4 by default), ORDERING_KILL_SEED the
// seed of the random choices (printed, to replay a failing run).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import {
  createScenario,
  type DispatcherProcess,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { flakyEndpoint } from '../helpers/flaky-endpoint.js';
import { rng } from '../helpers/rng.js';
import { waitFor } from '../helpers/wait.js';

const ROUNDS = Number(process.env.ORDERING_KILL_ROUNDS ?? 4);
const SEED = Number(process.env.ORDERING_KILL_SEED ?? Date.now() % 1_000_000);
const ENTITIES = 50;
const UPDATES = 10;

test(`ordering "entity": first accepted deliveries keep the produced order through SIGKILLs at random moments (${ROUNDS} rounds, seed ${SEED})`, async (t) => {
  const random = rng(SEED);
  t.diagnostic(`ORDERING_KILL_SEED=${SEED}`);
  const s = await createScenario(t, { partitions: 6 });
  const endpoint = await flakyEndpoint(t);
  await putSubscription(
    s,
    sampleSubscription({
      id: 'ordered',
      url: endpoint.url,
      ordering: 'entity',
      metadata: { events: ['TODO_MOVED'], projectIds: ['proj'] },
    }),
  );
  // The breaker stays out of it (see ordering.test.ts); retries come quickly.
  const env = { RETRY_SCHEDULE: '500ms,1s,2s,5s,10s', CB_FAILURE_THRESHOLD: '1000000', CB_FAILURE_RATE: '1' };
  const replicas: DispatcherProcess[] = await Promise.all([0, 1, 2].map(() => startDispatcher(s, env)));

  const outOfOrder: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const before = endpoint.count();
    const killAtMs = Math.floor(random() * 6000);
    // Half the rounds replace the victim at once; the others only once the round is over, so two replicas share its partitions meanwhile.
    const replaceAtOnce = random() < 0.5;
    const victim = Math.floor(random() * replicas.length);
    const produced = (async () => {
      for (let u = 0; u < UPDATES; u++) {
        const events = Array.from({ length: ENTITIES }, (_, e) => {
          const event = sampleEvent({
            eventId: `r${round}_${e}_${u}`,
            id: `r${round}_todo_${e}`,
            projectId: 'proj',
            type: 'TODO_MOVED',
          });
          (event.currentValue as Record<string, unknown>).update = u;
          return event;
        });
        await produceEvents(s, events);
        await new Promise((r) => setTimeout(r, 50 + random() * 100));
      }
    })();
    await new Promise((r) => setTimeout(r, killAtMs));
    replicas[victim]!.proc.kill('SIGKILL');
    await replicas[victim]!.exited;
    if (replaceAtOnce) replicas[victim] = await startDispatcher(s, env, { waitReady: false });
    await produced;
    await waitFor(() => endpoint.count() - before === ENTITIES * UPDATES, {
      what: `round ${round}: ${ENTITIES * UPDATES} accepted`,
      timeoutMs: 120_000,
      intervalMs: 100,
    });
    const broken = [...endpoint.accepted]
      .filter(([entity, updates]) => entity.startsWith(`r${round}_`) && updates.some((u, i) => u !== i))
      .map(([entity, updates]) => `${entity}: ${updates.join(',')}`);
    if (!replaceAtOnce) replicas[victim] = await startDispatcher(s, env);
    t.diagnostic(
      `round ${round}: replica ${victim} killed after ${killAtMs} ms, replaced ${replaceAtOnce ? 'at once' : 'after the round'}; ${broken.length} of ${ENTITIES} entities out of order`,
    );
    outOfOrder.push(...broken);
  }
  assert.deepEqual(outOfOrder, [], 'every entity in produced order, through every kill');
});
