// Isolation: one endpoint that never answers must not slow the others.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { createScenario, parseMetrics, produceEvents, putSubscription, startDispatcher } from '../helpers/dispatcher.js';
import { serve } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

const EVENTS = 1500;

/** An endpoint on its own port (its own origin); counts requests, or never answers them. */
async function endpoint(t: import('node:test').TestContext, hang: boolean) {
  const state = { count: 0 };
  const { url } = await serve(t, (req, res) => {
    req.resume();
    if (hang) return; // never answers
    req.on('end', () => {
      state.count++;
      res.writeHead(200).end();
    });
  });
  return { url: `${url}/hook`, state };
}

test('nine fast endpoints keep at least 90% of their delivery rate beside one that never answers, and memory stays bounded', async (t) => {
  const s = await createScenario(t);
  const fast = await Promise.all(Array.from({ length: 9 }, () => endpoint(t, false)));
  const hanging = await endpoint(t, true);
  const project = (phase: string) => `proj_${phase}`;
  // Phase A: the nine alone. Phase B: the nine plus the hanging one, on another project.
  for (const [i, e] of fast.entries()) {
    await putSubscription(s, sampleSubscription({ id: `fast_${i}`, url: e.url, metadata: { events: ['TODO_CREATED'], projectIds: [project('a'), project('b')] } }));
  }
  await putSubscription(s, sampleSubscription({ id: 'hanging', url: hanging.url, metadata: { events: ['TODO_CREATED'], projectIds: [project('b')] } }));
  // A realistic first retry delay: deliveries that overflow the hanging endpoint come back after the measurement.
  const d = await startDispatcher(s, { RETRY_SCHEDULE: '1m', DELIVERY_TIMEOUT_MS: '30000', DELIVERY_HEADERS_TIMEOUT_MS: '30000', MAX_IN_FLIGHT_DELIVERIES: '500' });
  const delivered = () => fast.reduce((n, e) => n + e.state.count, 0);
  const rss = async () => parseMetrics(await d.metrics()).get('blue_webhooks_process_resident_memory_bytes')!;

  const phase = async (name: string, projectOf = name) => {
    const start = delivered();
    const t0 = performance.now();
    let peak = 0;
    await produceEvents(s, Array.from({ length: EVENTS }, (_, i) => sampleEvent({ eventId: `${name}_${i}`, projectId: project(projectOf) })));
    await waitFor(async () => {
      peak = Math.max(peak, await rss());
      return delivered() - start === EVENTS * 9;
    }, { what: `phase ${name}: ${EVENTS * 9} deliveries to the nine`, timeoutMs: 120_000, intervalMs: 100 });
    const seconds = (performance.now() - t0) / 1000;
    return { rate: (EVENTS * 9) / seconds, seconds, peakMb: peak / 1048576 };
  };
  await phase('warm-up', 'a'); // connections, JIT, caches
  // Alternate the phases (A B, B A, A B) so drift in the machine's load falls on both alike.
  const totals = { a: { n: 0, s: 0, peak: 0 }, b: { n: 0, s: 0, peak: 0 } };
  for (const [round, order] of [['a', 'b'], ['b', 'a'], ['a', 'b']].entries()) {
    for (const p of order as ('a' | 'b')[]) {
      const r = await phase(`${p}${round}`, p);
      totals[p].n += EVENTS * 9;
      totals[p].s += r.seconds;
      totals[p].peak = Math.max(totals[p].peak, r.peakMb);
    }
  }
  const rateA = totals.a.n / totals.a.s;
  const rateB = totals.b.n / totals.b.s;
  const ratio = rateB / rateA;
  t.diagnostic(
    `nine alone: ${rateA.toFixed(0)} deliveries/s (peak RSS ${totals.a.peak.toFixed(0)} MB); ` +
      `beside a hanging endpoint: ${rateB.toFixed(0)} deliveries/s (peak RSS ${totals.b.peak.toFixed(0)} MB); ratio ${ratio.toFixed(3)}`,
  );
  assert.ok(ratio >= 0.9, `ratio ${ratio.toFixed(3)} < 0.9`);
  assert.ok(totals.b.peak < totals.a.peak + 100, `RSS beside the hanging endpoint ${totals.b.peak.toFixed(0)} MB vs ${totals.a.peak.toFixed(0)} MB`);
  const m = parseMetrics(await d.metrics());
  assert.ok((m.get('blue_webhooks_endpoint_saturated_total') ?? 0) > 0, 'the hanging endpoint overflowed into the retry path');
});
