// `npm run bench:table`: what the subscription table costs in Redis, and what a lookup costs a
// replica. Applies N subscriptions of two shapes (--subs N, default 2,000) under a key prefix of its
// own in the Redis at REDIS_URL (127.0.0.1:6379 by default), and prints:
// - bytes per subscription (MEMORY USAGE of every key the table wrote), against its JSON's size;
//   "typical" is about 1 KB with 3 projects and 4 events, "wide" is the largest a record may be
//   (236 KB) with 64 projects in 64 buckets;
// - the CPU and wall time of looking up every (project, event type) pair through a replica's
//   table with its caches of pairs off: cold (nothing compiled) and warm (every version compiled).
// It uses only what every version of the table has (applyAll, SubscriptionTable.candidates), so
// it can be copied (with bench/redis-bytes.ts) into an older checkout to measure that one.
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { sampleSubscription } from '../src/demo/sample-data.js';
import { Metrics } from '../src/metrics/metrics.js';
import { bucketOf } from '../src/shared/redis.js';
import { SubscriptionStore } from '../src/subscriptions/store.js';
import { SubscriptionTable } from '../src/subscriptions/table.js';
import { bytesUnder, deleteUnder } from './redis-bytes.js';

const { values: flags } = parseArgs({ options: { subs: { type: 'string', default: '2000' } } });
const count = Number(flags.subs);
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableAutoPipelining: true });
const prefix = `bench.table.${process.pid}.${Date.now()}:`;

/** Projects 0..63 of a shape, one per bucket, so that "wide" spreads as far as a record can. */
function projectsInDistinctBuckets(tag: string, n: number): string[] {
  const out: string[] = [];
  const buckets = new Set<number>();
  for (let i = 0; out.length < n; i++) {
    const p = `${tag}_${i}`;
    if (buckets.has(bucketOf(p))) continue;
    buckets.add(bucketOf(p));
    out.push(p);
  }
  return out;
}

const shapes = {
  typical: (i: number) =>
    sampleSubscription({
      id: `typ_${i}`,
      name: `webhook ${i} `.padEnd(600, 'x'),
      metadata: {
        events: ['TODO_CREATED', 'TODO_MOVED', 'TODO_DONE', 'COMMENT_CREATED'],
        projectIds: [`proj_${i % 500}`, `proj_${(i + 1) % 500}`, `proj_${(i + 2) % 500}`],
      },
    }),
  wide: (i: number) =>
    sampleSubscription({
      id: `wide_${i}`,
      name: 'n'.repeat(236_000),
      metadata: { events: ['TODO_CREATED'], projectIds: projectsInDistinctBuckets('wide', 64) },
    }),
};

async function main(): Promise<void> {
  const out: Record<string, unknown> = { subs: count };
  let offset = 0;
  for (const [name, make] of Object.entries(shapes)) {
    const n = name === 'wide' ? Math.max(1, Math.floor(count / 100)) : count;
    const store = new SubscriptionStore(redis, `${prefix}${name}:`);
    await store.beginBuild('bench');
    await store.markReady('bench');
    const before = await bytesUnder(redis, store.prefix);
    let jsonBytes = 0;
    for (let i = 0; i < n; i += 200) {
      const batch = Array.from({ length: Math.min(200, n - i) }, (_, j) => {
        const sub = make(i + j);
        jsonBytes += Buffer.byteLength(JSON.stringify(sub));
        return { change: { kind: 'put' as const, id: sub.id, sub }, pos: { partition: 0, offset: ++offset, atMs: 1 } };
      });
      await store.applyAll(batch);
    }
    const bytes = (await bytesUnder(redis, store.prefix)) - before;
    const perSub = bytes / n;
    const pairs = [...new Set(Array.from({ length: n }, (_, i) => make(i).metadata.projectIds).flat())].flatMap(
      (projectId) => make(0).metadata.events.map((eventType) => ({ projectId, eventType })),
    );
    const metrics = new Metrics({ defaultMetrics: false });
    const table = new SubscriptionTable(store, { cacheMaxEntries: 0, cacheTtlMs: 0 }, metrics);
    const timed = async () => {
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      let found = 0;
      for (let i = 0; i < pairs.length; i += 100) {
        const got = await table.candidates(pairs.slice(i, i + 100));
        for (const subs of got.values()) found += subs.length;
      }
      const used = process.cpuUsage(cpu);
      return { found, cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - t0 };
    };
    const cold = await timed();
    const warm = await timed();
    const expected = n * make(0).metadata.projectIds.length * make(0).metadata.events.length;
    if (cold.found !== expected || warm.found !== expected) {
      throw new Error(`${name}: ${cold.found} then ${warm.found} candidates found, ${expected} expected`);
    }
    out[name] = {
      subscriptions: n,
      jsonBytesPerSub: Math.round(jsonBytes / n),
      redisBytesPerSub: Math.round(perSub),
      redisBytesPerJsonByte: Number((perSub / (jsonBytes / n)).toFixed(2)),
      pairs: pairs.length,
      candidatesFound: warm.found,
      coldLookup: { cpuMs: Math.round(cold.cpuMs), wallMs: Math.round(cold.wallMs) },
      warmLookup: { cpuMs: Math.round(warm.cpuMs), wallMs: Math.round(warm.wallMs) },
    };
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

try {
  await main();
} finally {
  // Everything this run wrote goes, whatever happened.
  await deleteUnder(redis, prefix);
  redis.disconnect();
}
