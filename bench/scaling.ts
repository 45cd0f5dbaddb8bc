// (h) Replicas added and removed under load: duplicates and event-to-delivery latency while
// partitions move, at a steady rate and fan-out 2, against an endpoint that answers in 20 ms (so
// that deliveries are under way whenever partitions move).
// - graceful: 1 → 3 replicas, then the 2 added stop with SIGTERM (they drain before handing over);
// - killed: 1 → 3 replicas, then one of the added dies with SIGKILL: its partitions wait for the
//   group's session timeout (KAFKA_SESSION_TIMEOUT_MS), and what it had not committed is read again.
import {
  ask,
  type Bench,
  check,
  createTopics,
  type Dispatcher,
  envOf,
  log,
  producePaced,
  putSubscriptions,
  results,
  SIZE,
  shapeOf,
  startDispatcher,
  stopDispatcher,
  waitForDeliveries,
  waitJoined,
} from './harness.js';

export type ScaleEvent = 'graceful' | 'killed';

export interface ScalingRun {
  event: ScaleEvent;
  eventsPerSec: number;
  deliveries: number;
  duplicates: number;
  /** duplicates ÷ deliveries. */
  duplicateShare: number;
  sessionTimeoutMs: number;
  p50: number;
  p99: number;
  max: number;
}

const ENDPOINT_MS = 20;

const until = (t0: number, seconds: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, t0 + seconds * 1000 - Date.now())));

async function kill(d: Dispatcher): Promise<void> {
  const exited = new Promise((resolve) => d.proc.once('exit', resolve));
  d.proc.kill('SIGKILL');
  await exited;
}

export async function scaling(bench: Bench, event: ScaleEvent, sessionTimeoutMs = 10_000): Promise<ScalingRun> {
  const { admin, producer, rx, stack, base, ports } = bench;
  const { rate, seconds, upAt, downAt } = SIZE.scaling;
  const shape = shapeOf(`scale-${event}-${sessionTimeoutMs}`, 2, base);
  await createTopics(admin, shape);
  await putSubscriptions(producer, shape, ports);
  const group = `${base}.h.${shape.name}`;
  const env = { ...envOf(shape, stack, group), KAFKA_SESSION_TIMEOUT_MS: String(sessionTimeoutMs) };
  await ask(rx, { cmd: 'reset' }, 'reset');
  await ask(rx, { cmd: 'delay', delayMs: ENDPOINT_MS }, 'delay');
  const first = await startDispatcher(env);
  await waitJoined(admin, group, 1);

  const t0 = Date.now();
  const producing = producePaced(producer, shape, shape.topics.events, rate, seconds, `h${shape.name}`);
  await until(t0, upAt);
  const added = await Promise.all([startDispatcher(env), startDispatcher(env)]);
  await until(t0, downAt);
  if (event === 'graceful') await Promise.all(added.map(stopDispatcher));
  else await kill(added[0]!);
  const produced = await producing;

  const expected = produced * shape.fanout;
  const s = await waitForDeliveries(rx, expected, 120_000);
  await Promise.all([first, ...added].map(stopDispatcher));
  await ask(rx, { cmd: 'delay', delayMs: 0 }, 'delay');
  const name = `scaling 1 → 3 → ${event === 'graceful' ? '1 (SIGTERM)' : '2 (one SIGKILL)'}`;
  check(name, s, expected);
  const run: ScalingRun = {
    event,
    eventsPerSec: rate,
    deliveries: s.unique,
    duplicates: s.total - s.unique,
    duplicateShare: (s.total - s.unique) / s.unique,
    sessionTimeoutMs,
    p50: s.latency.p50,
    p99: s.latency.p99,
    max: s.latency.max,
  };
  results.scaling = [...((results.scaling as ScalingRun[] | undefined) ?? []), run];
  log(
    `(h) ${name} at ${rate} events/s, fan-out 2, session timeout ${sessionTimeoutMs} ms: ${run.duplicates} duplicates of ${run.deliveries} (${(run.duplicateShare * 100).toFixed(2)}%), p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms, max ${run.max.toFixed(1)} ms`,
  );
  return run;
}
