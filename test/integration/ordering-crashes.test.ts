// Ordering "entity" against a crash at any step. The real runner and the real entity lines on
// Redis; around them a small model of Kafka: the events of one entity with a committed offset,
// and the retry records written, each consumed once its run has finished. Two processes: one reads
// the events, the other the retry records; fast-check's scheduler chooses the order in which
// their steps (every Redis line operation, retry record write, outcome write and HTTP attempt)
// go, and the process that owns the events or the retries is killed before one chosen step. The
// survivor then takes over what the dead one owned, from what was committed. Afterwards every
// delivery must have been accepted, each entity's first accepted deliveries in event order.
// FUZZ_COUNT sets the number of runs (300 by default), FUZZ_SEED the seed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { AttemptReport, Delivery } from '../../src/delivery/index.js';
import { classifyAttempt, eventPayload } from '../../src/delivery/index.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { Metrics } from '../../src/metrics/index.js';
import { EntityOrder, entityOf } from '../../src/ordering/index.js';
import type { RetryRecord } from '../../src/retries/index.js';
import { DeliveryRunner, type DeliveryRunnerDeps, inputFromRecord } from '../../src/runner/index.js';
import { activate } from '../../src/subscriptions/index.js';
import { Tracing } from '../../src/tracing/index.js';
import { deleteKeys, serviceRedis } from '../helpers/redis.js';

const RUNS = Math.min(Number(process.env.FUZZ_COUNT ?? 300), 3000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261204);

class Crash extends Error {}

const target = activate(
  sampleSubscription({
    id: 'wh',
    url: 'http://127.0.0.1:1/hook',
    ordering: 'entity',
    metadata: { events: ['TODO_MOVED'], projectIds: ['p'] },
  }),
);
const entity = entityOf(Buffer.from('todo_1'))!;
const tracing = new Tracing({ endpoint: '', serviceName: 'test', instanceId: 'test' });

test(`ordering "entity": a crash before any step keeps first deliveries in event order (${RUNS} runs, seed ${SEED})`, async (t) => {
  const redis = serviceRedis();
  const base = `test:order-crash:${process.pid}:${Date.now()}:`;
  t.after(async () => {
    await deleteKeys(redis, base);
    redis.disconnect();
  });
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.scheduler(),
      fc.integer({ min: 2, max: 5 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          // Deliveries whose first attempt the endpoint answers 500.
          failFirst: fc.uniqueArray(fc.nat(n - 1), { maxLength: n }),
          victim: fc.constantFrom<'events' | 'retries'>('events', 'retries'),
          crashAtStep: fc.integer({ min: 1, max: 40 }),
        }),
      ),
      async (s, { n, failFirst, victim, crashAtStep }) => {
        const order = new EntityOrder(redis, `${base}${run++}:`, 1000);
        // The endpoint: first answers 500 for the chosen deliveries, 200 otherwise.
        const seen = new Set<string>();
        const firstAccepted: number[] = [];
        // Kafka: the committed offset of the events, and the retry records written.
        let committed = 0;
        const retries: { record: RetryRecord; consumed: boolean; running: boolean }[] = [];
        let eventsDone = false;

        /** A replica's process: its own runner (in-process state), dead once crashed. */
        const replica = (name: 'events' | 'retries') => {
          let steps = 0;
          let dead = false;
          /** Every step waits for the scheduler; the victim dies before its chosen step. */
          const step = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
            await s.schedule(Promise.resolve(), `${name}: ${label}`);
            if (dead) throw new Crash(name);
            if (name === victim && ++steps === crashAtStep) {
              dead = true;
              throw new Crash(name);
            }
            return fn();
          };
          const deps = {
            deliverer: {
              attempt: (delivery: Delivery, attempt: number): Promise<AttemptReport> =>
                step(`attempt ${delivery.deliveryId}`, async () => {
                  const k = Number(delivery.deliveryId.split('_')[1]);
                  const first = !seen.has(delivery.deliveryId);
                  seen.add(delivery.deliveryId);
                  const status = first && failFirst.includes(k) ? 500 : 200;
                  if (status === 200 && !firstAccepted.includes(k)) firstAccepted.push(k);
                  return { outcome: classifyAttempt({ status, headers: {} }), durationMs: 1, snippet: null, attempt };
                }),
            },
            breaker: { admit: () => 'closed', record: () => undefined },
            gate: { enter: () => 'entered', release: () => {}, waitForRoom: () => undefined },
            rateLimiter: {},
            order: {
              admit: (...a: Parameters<EntityOrder['admit']>) => step('admit', () => order.admit(...a)),
              hold: (...a: Parameters<EntityOrder['hold']>) => step('hold', () => order.hold(...a)),
              turn: (...a: Parameters<EntityOrder['turn']>) => step('turn', () => order.turn(...a)),
              release: (...a: Parameters<EntityOrder['release']>) => step('release', () => order.release(...a)),
              markDriven: (...a: Parameters<EntityOrder['markDriven']>) =>
                step('markDriven', () => order.markDriven(...a)),
            },
            maxEntityQueue: 256,
            scheduler: {
              schedule: (record: RetryRecord) =>
                step(`write retry ${record.deliveryId}`, async () => {
                  retries.push({ record, consumed: false, running: false });
                }),
              deadLetter: (record: RetryRecord) => step(`dead-letter ${record.deliveryId}`, async () => {}),
            },
            results: { publish: () => step('publish outcome', async () => {}) },
            statuses: { publish: async () => {} },
            policy: {
              scheduleMs: [10, 20, 40],
              jitter: 0,
              retryAfterMaxMs: 3_600_000,
              retryOnStatus: new Set<number>(),
            },
            metrics: new Metrics({ defaultMetrics: false }),
            untilDone: <T>(fn: () => Promise<T>) => fn(),
            tracing,
          } as unknown as DeliveryRunnerDeps;
          return { runner: new DeliveryRunner(deps), isDead: () => dead };
        };

        const eventInput = (k: number) => {
          const event = {
            ...sampleEvent({ eventId: `e_${k}`, id: 'todo_1', projectId: 'p', type: 'TODO_MOVED' }),
            occurredAtMs: Date.now(),
          };
          const delivery: Delivery = {
            deliveryId: `d_${k}`,
            event,
            payload: eventPayload(event),
            target,
            eventTimestampMs: Date.now(),
            entity,
          };
          return { delivery, attempt: 1, retriesDone: 0, firstAttemptAt: Date.now(), via: 'event' as const };
        };
        /** Reads the events from the committed offset, one at a time (one entity: the pipeline chains them). */
        const readEvents = async (p: ReturnType<typeof replica>) => {
          try {
            while (committed < n) {
              await p.runner.run(eventInput(committed));
              committed++;
            }
            eventsDone = true;
          } catch (err) {
            if (!(err instanceof Crash)) throw err;
          }
        };
        /** Runs the retry records not consumed yet, up to two at once, until none is left once the events are done. */
        const readRetries = async (p: ReturnType<typeof replica>, until: () => boolean) => {
          const running = new Set<Promise<void>>();
          const deadline = Date.now() + 10_000;
          for (;;) {
            if (p.isDead()) return;
            assert.ok(Date.now() < deadline, 'the retry records settle within 10 s');
            const next = retries.find((r) => !r.consumed && !r.running);
            if (next && running.size < 2) {
              next.running = true;
              const work = p.runner
                .run(inputFromRecord(next.record, target))
                .then(
                  () => {
                    next.consumed = true;
                  },
                  (err) => {
                    if (!(err instanceof Crash)) throw err;
                  },
                )
                .finally(() => {
                  next.running = false;
                  running.delete(work);
                });
              running.add(work);
              continue;
            }
            if (running.size > 0) await Promise.race(running);
            else if (until()) return;
            // Nothing to run yet: let I/O through (Redis replies), then look again.
            else await new Promise((resolve) => setImmediate(resolve));
          }
        };

        const events = replica('events');
        const retryProc = replica('retries');
        const main = (async () => {
          await Promise.all([readEvents(events), readRetries(retryProc, () => eventsDone || events.isDead())]);
          // The survivor takes over what the dead one owned, from what was committed.
          const survivor = replica(victim === 'events' ? 'retries' : 'events');
          await Promise.all([readEvents(survivor), readRetries(survivor, () => eventsDone)]);
        })();
        await s.waitFor(main);

        assert.deepEqual(
          [...firstAccepted].sort((a, b) => a - b),
          Array.from({ length: n }, (_, k) => k),
          'every delivery accepted',
        );
        assert.deepEqual(
          firstAccepted,
          Array.from({ length: n }, (_, k) => k),
          'first accepted in event order',
        );
      },
    ),
    { numRuns: RUNS, seed: SEED, includeErrorInReport: true },
  );
});
