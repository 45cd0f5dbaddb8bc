// (e) Event-to-delivery latency at a fixed offered rate and near saturation, with the raw Kafka
// produce-to-consume and raw HTTP round-trip latencies at the same rate alongside.
import fs from 'node:fs';
import path from 'node:path';
import {
  ask,
  type Bench,
  check,
  createTopics,
  createTopicsRetrying,
  envOf,
  log,
  nextMessage,
  producePaced,
  putSubscriptions,
  results,
  root,
  type Shape,
  SIZE,
  shapeOf,
  spawnTs,
  startDispatcher,
  stopDispatcher,
  waitForDeliveries,
  waitJoined,
} from './harness.js';
import { runHttp } from './limits.js';

interface Latency {
  p50: number;
  p99: number;
  max: number;
}

/** One dispatcher on topics of its own, fed at `rate` events/s after a warm-up. */
async function latencyAt(
  bench: Bench,
  rate: number,
  label: string,
): Promise<Latency & { offeredEventsPerSec: number }> {
  const { admin, producer, rx, stack, base, ports } = bench;
  await ask(rx, { cmd: 'reset' }, 'reset');
  const group = `${base}.e.${label}`;
  const lt = shapeOf(`lat${label}`, 1, base);
  await createTopics(admin, lt);
  await putSubscriptions(producer, lt, ports);
  const dsp = await startDispatcher(envOf(lt, stack, group));
  await waitJoined(admin, group, 1);
  // Warm up (connections, JIT, metadata), then measure the steady state.
  const warm = await producePaced(producer, lt, lt.topics.events, rate, 2, `warm${label}`);
  await waitForDeliveries(rx, warm, 60_000);
  await ask(rx, { cmd: 'reset' }, 'reset');
  const total = await producePaced(producer, lt, lt.topics.events, rate, SIZE.latencySeconds, `lat${label}`);
  const s = await waitForDeliveries(rx, total, 120_000);
  const text = await (await fetch(`http://127.0.0.1:${dsp.port}/metrics`)).text();
  fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
  fs.writeFileSync(path.join(root, `bench/results/metrics-latency-${label}.txt`), text);
  await stopDispatcher(dsp);
  check(`latency at ${rate}/s`, s, total);
  return { offeredEventsPerSec: rate, ...s.latency };
}

/** (e), near saturation meaning at 80% of `fo1Rate`, the throughput of fan-out 1 on 1 replica. */
export async function latency(bench: Bench, fo1: Shape, fo1Rate: number) {
  const { admin, producer, stack, base } = bench;
  const fixed = await latencyAt(bench, SIZE.fixedRate, 'fixed');
  const near = await latencyAt(bench, Math.round(fo1Rate * 0.8), 'near');
  const rawTopic = `${base}.raw`;
  await createTopicsRetrying(admin, [{ topic: rawTopic, numPartitions: 12, replicationFactor: 1 }]);
  const rawConsumer = spawnTs('bench/consume-limit.ts', [
    stack.KAFKA_BROKERS!,
    rawTopic,
    `${base}.raw`,
    String(Math.round(SIZE.fixedRate * SIZE.latencySeconds)),
    'latency',
  ]);
  await nextMessage(rawConsumer, 'ready');
  await waitJoined(admin, `${base}.raw`, 1);
  await producePaced(producer, fo1, rawTopic, SIZE.fixedRate, SIZE.latencySeconds, 'raw');
  const rawKafka = await nextMessage<Latency>(rawConsumer, 'done');
  const rawHttp = await runHttp(bench, Math.round(SIZE.fixedRate * SIZE.latencySeconds), SIZE.fixedRate);
  results.latency = { fixed, nearSaturation: near, rawKafka, rawHttp };
  log(
    `(e) latency at ${SIZE.fixedRate}/s: p50 ${fixed.p50.toFixed(1)} ms, p99 ${fixed.p99.toFixed(1)} ms; raw Kafka p99 ${rawKafka.p99.toFixed(1)} ms, raw HTTP p99 ${rawHttp.p99.toFixed(1)} ms`,
  );
  return { fixed, near, rawKafka, rawHttp };
}
