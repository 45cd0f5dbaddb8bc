// (f) Memory while a backlog waits behind a slow receiver: RSS must stay flat, bounded by the
// deliveries in flight rather than the events pending.
import {
  ask,
  type Bench,
  createTopics,
  envOf,
  log,
  metric,
  produceAll,
  putSubscriptions,
  results,
  SIZE,
  shapeOf,
  startDispatcher,
  stopDispatcher,
} from './harness.js';

/** `busiestPeakRssMb`: the highest peak RSS of the end-to-end runs, what a backlog may not exceed by much. */
export async function memory(bench: Bench, busiestPeakRssMb: number): Promise<{ backlogPeakRssMb: number }> {
  const { admin, producer, rx, stack, base, ports } = bench;
  await ask(rx, { cmd: 'reset' }, 'reset');
  await ask(rx, { cmd: 'delay', delayMs: 1000 }, 'delay');
  const bl = shapeOf('backlog', 1, base);
  await createTopics(admin, bl);
  await putSubscriptions(producer, bl, ports);
  await produceAll(producer, bl, SIZE.backlogEvents, 'backlog');
  const dsp = await startDispatcher(envOf(bl, stack, `${base}.f`));
  const samples: { t: number; rssMb: number; lag: number; inFlight: number }[] = [];
  const t0 = Date.now();
  while (Date.now() - t0 < SIZE.backlogSeconds * 1000) {
    await new Promise((r) => setTimeout(r, 500));
    samples.push({
      t: (Date.now() - t0) / 1000,
      rssMb: dsp.rssMb(),
      lag: await metric(dsp, 'blue_webhooks_consumer_lag'),
      inFlight: await metric(dsp, 'blue_webhooks_deliveries_in_flight'),
    });
  }
  const backlogPeakRssMb = dsp.peakRssMb();
  await stopDispatcher(dsp);
  await ask(rx, { cmd: 'delay', delayMs: 0 }, 'delay');
  const third = Math.max(1, Math.floor(samples.length / 3));
  const early = Math.max(...samples.slice(third, 2 * third).map((s) => s.rssMb)); // past start-up
  const late = Math.max(...samples.slice(-third).map((s) => s.rssMb));
  results.memory = {
    peakRssMbBusiest: busiestPeakRssMb,
    backlog: {
      pendingEvents: SIZE.backlogEvents,
      minLagSeen: Math.min(...samples.map((s) => s.lag)),
      maxInFlight: Math.max(...samples.map((s) => s.inFlight)),
      peakRssMb: backlogPeakRssMb,
      rssFirstThirdMb: early,
      rssLastThirdMb: late,
      samples,
    },
  };
  log(
    `(f) backlog of ${SIZE.backlogEvents}: RSS ${early.toFixed(0)} MB early, ${late.toFixed(0)} MB late, peak ${backlogPeakRssMb.toFixed(0)} MB`,
  );
  return { backlogPeakRssMb };
}
