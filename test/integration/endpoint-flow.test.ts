// Endpoint flow: a burst is delivered at the endpoint's pace, not diverted; rate limits hold
// across replicas; a 429 slows the endpoint down.
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
import { serve } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

/** An endpoint on its own origin that answers 200 after `delayMs`, noting when each request arrived and the most at once. */
async function endpoint(t: import('node:test').TestContext, delayMs = 0, status: () => number = () => 200) {
  const state = { arrivals: [] as number[], ids: new Set<string>(), sentAt: [] as number[], open: 0, maxOpen: 0 };
  const { url } = await serve(t, (req, res) => {
    const chunks: Buffer[] = [];
    state.open++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = () => {
        state.open--;
        const code = status();
        if (code === 200) {
          state.arrivals.push(Date.now());
          state.ids.add(String(req.headers['x-blue-delivery']));
          state.sentAt.push(JSON.parse(Buffer.concat(chunks).toString('utf8')).currentValue.sentAt);
        }
        res.writeHead(code, code === 429 ? { 'retry-after': '1' } : {}).end();
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  return { url: `${url}/hook`, state };
}

function burst(prefix: string, n: number, projectOf: (i: number) => string) {
  return Array.from({ length: n }, (_, i) => {
    // One entity each (a bulk move of 2,000 todos), so the events spread over the partitions.
    const e = sampleEvent({ eventId: `${prefix}_${i}`, id: `todo_${prefix}_${i}`, projectId: projectOf(i) });
    (e.currentValue as Record<string, unknown>).sentAt = Date.now();
    return e;
  });
}

async function metric(d: { metrics(): Promise<string> }, name: string): Promise<number> {
  return parseMetrics(await d.metrics()).get(name) ?? 0;
}

/** Produces the events as one burst; resolves with deliveries/s (first produce to last receipt) and the p99 event-to-receipt latency. */
async function timedBurst(
  s: Scenario,
  events: ReturnType<typeof burst>,
  received: () => { arrivals: number[]; sentAt: number[] }[],
) {
  const before = received().reduce((n, r) => n + r.arrivals.length, 0);
  const t0 = Date.now();
  for (const e of events) (e.currentValue as Record<string, unknown>).sentAt = Date.now();
  await produceEvents(s, events);
  await waitFor(() => received().reduce((n, r) => n + r.arrivals.length, 0) - before >= events.length, {
    what: `${events.length} deliveries`,
    timeoutMs: 60_000,
  });
  const arrivals = received().flatMap((r) => r.arrivals.slice(0));
  const latencies = received()
    .flatMap((r) => r.arrivals.map((at, i) => at - r.sentAt[i]!))
    .slice(-events.length)
    .sort((a, b) => a - b);
  const seconds = (Math.max(...arrivals) - t0) / 1000;
  return { rate: events.length / seconds, p99: latencies[Math.floor(0.99 * (latencies.length - 1))]! };
}

test('a 2,000-event burst into one fast webhook: no endpoint_busy, waits for room, a p99 like the fan-out-1 one', async (t) => {
  const s = await createScenario(t);
  // The reference: the same events spread over 20 webhooks on 20 origins (fan-out 1, as in the bench).
  const spread = await Promise.all(Array.from({ length: 20 }, () => endpoint(t)));
  for (const [i, e] of spread.entries()) {
    await putSubscription(
      s,
      sampleSubscription({
        id: `spread_${i}`,
        url: e.url,
        metadata: { events: ['TODO_CREATED'], projectIds: [`proj_s${i}`] },
      }),
    );
  }
  const one = await endpoint(t);
  await putSubscription(
    s,
    sampleSubscription({ id: 'one', url: one.url, metadata: { events: ['TODO_CREATED'], projectIds: ['proj_one'] } }),
  );
  const d = await startDispatcher(s, { RETRY_SCHEDULE: '10m' });
  await timedBurst(
    s,
    burst('warm', 500, (i) => `proj_s${i % 20}`),
    () => spread.map((e) => e.state),
  ); // connections, JIT
  // The rates are printed, not asserted: one origin gets at most MAX_CONNECTIONS_PER_ORIGIN
  // requests at once where 20 get 20 times that, so their ratio follows the machine's speed (1.0
  // on a quiet day, 0.5 to 1.1 from round to round on a loaded one). The bench is where speed is
  // measured; this test holds what the fix is about: nothing diverted, and no outlying latency.
  const ratios: number[] = [];
  const worstP99 = { spread: 0, one: 0 };
  // Alternated (AB, BA, AB), so drift in the machine's load falls on both alike.
  for (const [round, order] of [
    ['spread', 'one'],
    ['one', 'spread'],
    ['spread', 'one'],
  ].entries()) {
    const rate = { spread: 0, one: 0 };
    for (const phase of order as ('spread' | 'one')[]) {
      const r =
        phase === 'spread'
          ? await timedBurst(
              s,
              burst(`ref${round}`, 2000, (i) => `proj_s${i % 20}`),
              () => spread.map((e) => e.state),
            )
          : await timedBurst(
              s,
              burst(`one${round}`, 2000, () => 'proj_one'),
              () => [one.state],
            );
      t.diagnostic(
        `round ${round}, ${phase === 'spread' ? 'fan-out 1 over 20 endpoints' : 'one endpoint'}: ${r.rate.toFixed(0)}/s, p99 ${r.p99} ms`,
      );
      rate[phase] = r.rate;
      worstP99[phase] = Math.max(worstP99[phase], r.p99);
    }
    ratios.push(rate.one / rate.spread);
  }
  t.diagnostic(
    `one endpoint / spread, per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}; worst p99 ${worstP99.one} ms vs ${worstP99.spread} ms`,
  );
  assert.equal(one.state.ids.size, 6000, 'every delivery arrived once');
  assert.equal(await metric(d, 'blue_webhooks_endpoint_saturated_total'), 0, 'no endpoint_busy outcome');
  assert.equal(await metric(d, 'blue_webhooks_retries_scheduled_total{reason="endpoint_busy"}'), 0);
  // Before backpressure: 26% diverted and a p99 of 5.5 s while the spread burst took about 0.4 s.
  assert.ok(
    worstP99.one < Math.max(2000, 1.5 * worstP99.spread),
    `p99 ${worstP99.one} ms against ${worstP99.spread} ms spread`,
  );
  assert.ok(
    (await metric(d, 'blue_webhooks_backpressure_wait_seconds_total')) > 0,
    'the burst waited for room instead of being diverted',
  );
});

test('a burst to an endpoint answering in 200 ms is delivered at about concurrency / 0.2 s, without diversion', async (t) => {
  const s = await createScenario(t);
  const slow = await endpoint(t, 200);
  await putSubscription(
    s,
    sampleSubscription({
      id: 'slow',
      url: slow.url,
      metadata: { events: ['TODO_CREATED'], projectIds: ['proj_slow'] },
    }),
  );
  // Expected wait with a full queue: (256 + 1) × 200 ms / 16 = 3.2 s. ENDPOINT_MAX_WAIT_MS is 15 s
  // here, not 5: a loaded machine measured this endpoint's service time past 311 ms, where 5 s
  // judges it too slow and diverts the burst (CI saw 312 diverted).
  const d = await startDispatcher(s, { RETRY_SCHEDULE: '10m', ENDPOINT_MAX_WAIT_MS: '15000' });
  // Known first: a cold endpoint is on probation, and one whose first answer takes more than about
  // 0.3 s (a connection set up on a loaded machine) is diverted, which this test is not about.
  await produceEvents(
    s,
    burst('slow_warm', 16, () => 'proj_slow'),
  );
  await waitFor(() => slow.state.ids.size >= 16, { what: 'the first 16 deliveries' });
  const N = 600;
  const t0 = Date.now();
  await produceEvents(
    s,
    burst('slow', N, () => 'proj_slow'),
  );
  await waitFor(() => slow.state.ids.size >= 16 + N, { what: `${N} deliveries at 80/s`, timeoutMs: 60_000 }).catch(
    async (err) => {
      // What the dispatcher says it did, for a failure seen only on a loaded machine.
      const counters = (await d.metrics())
        .split('\n')
        .filter((l) =>
          /^blue_webhooks_(outcomes|endpoint_saturated|retries_scheduled|backpressure_wait|deliveries_in_flight)/.test(
            l,
          ),
        );
      const warnings = d.logs.filter((l) => l.level === 'warn' || l.level === 'error').slice(0, 10);
      t.diagnostic(
        `DIAG ${slow.state.ids.size} received, at most ${slow.state.maxOpen} open\n${counters.join('\n')}\n${warnings.map((l) => JSON.stringify(l)).join('\n')}`,
      );
      throw err;
    },
  );
  const rate = N / ((Math.max(...slow.state.arrivals) - t0) / 1000);
  t.diagnostic(`${rate.toFixed(1)} deliveries/s (16 / 0.2 s = 80); at most ${slow.state.maxOpen} requests at once`);
  assert.equal(await metric(d, 'blue_webhooks_endpoint_saturated_total'), 0, 'nothing diverted');
  assert.ok(rate >= 64 && rate <= 84, `rate ${rate.toFixed(1)}/s is not about 80/s`);
  assert.ok(slow.state.maxOpen <= 16, 'never more than ENDPOINT_MAX_CONCURRENCY at once');
});

test('a webhook limited to 20/s gets 20/s ±10% from three replicas, and nothing is lost', async (t) => {
  const s = await createScenario(t);
  const rx = await endpoint(t);
  const limited = sampleSubscription({
    id: 'limited',
    url: rx.url,
    rateLimitPerSecond: 20,
    metadata: { events: ['TODO_CREATED'], projectIds: ['proj_rl'] },
  });
  await putSubscription(s, limited, 'avro'); // the field goes through the registry too
  const env = { RETRY_SCHEDULE: '1s,2s,5s,10s,20s,30s' };
  const replicas = [];
  for (let i = 0; i < 3; i++) replicas.push(await startDispatcher(s, env));
  const N = 400; // 20 s at 20/s: the middle 10 s are measured
  await produceEvents(
    s,
    burst('rl', N, () => 'proj_rl'),
  );
  await waitFor(() => rx.state.ids.size >= N, { what: `${N} deliveries at 20/s`, timeoutMs: 90_000, intervalMs: 200 });
  const arrivals = [...rx.state.arrivals].sort((a, b) => a - b);
  const from = arrivals[0]! + 5000;
  const inWindow = arrivals.filter((at) => at >= from && at < from + 10_000).length;
  const waited = await Promise.all(replicas.map((r) => metric(r, 'blue_webhooks_rate_limited_total{result="waited"}')));
  const deferred = await Promise.all(
    replicas.map((r) => metric(r, 'blue_webhooks_rate_limited_total{result="deferred"}')),
  );
  t.diagnostic(
    `${inWindow} deliveries in 10 s (${(inWindow / 10).toFixed(1)}/s); waited ${waited.join('/')}, deferred ${deferred.join('/')} per replica`,
  );
  assert.equal(rx.state.ids.size, N, 'every delivery arrived');
  assert.ok(inWindow >= 180 && inWindow <= 220, `${inWindow} in 10 s is not 200 ±10%`);
  assert.ok(waited.filter((n) => n > 0).length >= 2, 'at least two replicas shared the limit');
});

test('429s slow the endpoint down beyond Retry-After: its concurrency is halved, then won back', async (t) => {
  const s = await createScenario(t);
  // Exactly the first 64 answers are 429s. A switch flipped by the test once it had seen them
  // raced the 429s' own retries (Retry-After: 1) on a slow machine.
  let throttled = 0;
  const rx = await endpoint(t, 50, () => (throttled++ < 64 ? 429 : 200));
  await putSubscription(
    s,
    sampleSubscription({
      id: 'throttled',
      url: rx.url,
      metadata: { events: ['TODO_CREATED'], projectIds: ['proj_429'] },
    }),
  );
  // The gate is under test, not the circuit breaker: 64 429s in a row would open the circuit,
  // and a probe that drew a 429 would then hold every delivery back for CB_PROBE_INTERVAL_MS.
  const d = await startDispatcher(s, {
    RETRY_SCHEDULE: '1s,2s,5s,10s',
    CB_FAILURE_THRESHOLD: '1000',
    CB_MIN_REQUESTS: '1000',
  });
  await produceEvents(
    s,
    burst('throttled', 64, () => 'proj_429'),
  );
  await waitFor(async () => (await metric(d, 'blue_webhooks_endpoint_throttled_total')) >= 64, {
    what: '64 answers 429',
  });
  assert.equal(rx.state.maxOpen, 16, 'before: ENDPOINT_MAX_CONCURRENCY at once');
  rx.state.maxOpen = 0;
  await produceEvents(
    s,
    burst('after', 40, () => 'proj_429'),
  );
  await waitFor(() => rx.state.arrivals.length >= 40, { what: '40 deliveries after the 429s' });
  const first40 = rx.state.maxOpen;
  t.diagnostic(`at most ${first40} requests at once in the 40 deliveries after the 429s (16 before)`);
  assert.ok(first40 <= 10, `${first40} at once right after a run of 429s`);
  await waitFor(() => rx.state.ids.size >= 104, {
    what: 'the throttled ones retried and delivered',
    timeoutMs: 60_000,
  });
});
