// The limits of the dispatcher's parts, measured alone on the same machine: (a) reading the events
// topic with kafkajs, and (a') with @platformatic/kafka; (b) POSTing the same signed bodies to the
// same receiver at the same concurrency, with the client's own CPU per request.
import { deliveryBody, eventPayload } from '../src/delivery/payload.js';
import { sampleSubscription } from '../src/demo/sample-data.js';
import { activate } from '../src/subscriptions/subscription.js';
import {
  ask,
  type Bench,
  eventJson,
  HTTP_CONCURRENCY,
  log,
  nextMessage,
  results,
  SECRET,
  SIZE,
  spawnTs,
} from './harness.js';

export interface ConsumeLimit {
  eventsPerSec: number;
}

export interface HttpRun {
  requestsPerSec: number;
  cpuUsPerRequest: number;
  p50: number;
  p99: number;
  max: number;
}

/** (a) and (a'): the fan-out 1 topic (which holds at least SIZE.events events) read as fast as it goes. */
export async function consumeLimits(bench: Bench, fo1Events: string): Promise<{ a: ConsumeLimit; a2: ConsumeLimit }> {
  const brokers = bench.stack.KAFKA_BROKERS!;
  const a = await nextMessage<ConsumeLimit>(
    spawnTs('bench/consume-limit.ts', [brokers, fo1Events, `${bench.base}.a`, String(SIZE.events), 'throughput']),
    'done',
  );
  results.consumeLimit = a;
  log(`(a) consume limit: ${a.eventsPerSec.toFixed(0)} events/s`);
  // The other client worth a port.
  const a2 = await nextMessage<ConsumeLimit>(
    spawnTs('bench/consume-limit-platformatic.ts', [brokers, fo1Events, `${bench.base}.a2`, String(SIZE.events)]),
    'done',
  );
  results.consumeLimitPlatformatic = a2;
  log(
    `(a') consume limit, @platformatic/kafka: ${a2.eventsPerSec.toFixed(0)} events/s (${(a2.eventsPerSec / a.eventsPerSec).toFixed(2)} × kafkajs)`,
  );
  return { a, a2 };
}

/** Signed POSTs of real delivery bodies: `count` of them, as fast as they go (rate 0) or paced. */
export async function runHttp(bench: Bench, count: number, rate: number): Promise<HttpRun> {
  const bodies = Array.from({ length: 50 }, (_, i) => {
    const e = JSON.parse(eventJson(`http_${i}`, 'proj_0'));
    return deliveryBody(
      eventPayload({ ...e, occurredAtMs: 0 }),
      activate(sampleSubscription({ secret: SECRET })).webhookJson,
    );
  });
  const p = spawnTs('bench/http-limit.ts');
  await nextMessage(p, 'ready');
  const reply = nextMessage<HttpRun>(p);
  p.send({
    ports: bench.ports,
    bodies,
    secret: SECRET,
    concurrency: HTTP_CONCURRENCY,
    connectionsPerOrigin: 32,
    count,
    rate,
  });
  return reply;
}

/**
 * (b) The HTTP limit: the median of three runs. One run moved by up to 78% between two full runs
 * (10,022 and 17,814 requests/s, at the same client CPU per request), which swung c / min(a, b).
 */
export async function httpLimit(bench: Bench): Promise<HttpRun> {
  const runs: HttpRun[] = [];
  for (let i = 0; i < 3; i++) {
    await ask(bench.rx, { cmd: 'reset' }, 'reset');
    runs.push(await runHttp(bench, SIZE.events, 0));
  }
  runs.sort((x, y) => x.requestsPerSec - y.requestsPerSec);
  const b = runs[1]!;
  results.httpLimit = { ...b, runsPerSec: runs.map((run) => Math.round(run.requestsPerSec)) };
  log(
    `(b) HTTP limit: ${b.requestsPerSec.toFixed(0)} requests/s at concurrency ${HTTP_CONCURRENCY} (median of ${runs
      .map((run) => run.requestsPerSec.toFixed(0))
      .join(', ')}); client CPU ${b.cpuUsPerRequest.toFixed(0)} µs per request`,
  );
  return b;
}
