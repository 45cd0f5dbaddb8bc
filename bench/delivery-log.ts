// `npm run bench:log`: what the delivery log costs in Redis. Logs --webhooks W (default 200) webhooks
// × --attempts A (default 100) attempts each, under a key prefix of its own in the Redis at
// REDIS_URL (127.0.0.1:6379 by default), in batches of 500 as the consumer does, and prints the bytes
// per attempt (MEMORY USAGE of every key the log wrote) for two answers: a typical small one
// ({"ok":true}) and the largest kept (a 1 KB snippet); and the append's CPU per attempt.
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { DeliveryLog } from '../src/owner/index.js';
import type { WebhookResult } from '../src/results/index.js';
import { bytesUnder, deleteUnder } from './redis-bytes.js';

const { values: flags } = parseArgs({
  options: { webhooks: { type: 'string', default: '200' }, attempts: { type: 'string', default: '100' } },
});
const webhooks = Number(flags.webhooks);
const attempts = Number(flags.attempts);
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableAutoPipelining: true });

async function measure(shape: string, snippet: string) {
  const prefix = `bench.log.${process.pid}.${shape}:`;
  const log = new DeliveryLog(redis, prefix, { maxPerWebhook: attempts, retentionMs: 7 * 86_400_000 });
  const now = Date.now();
  const all: WebhookResult[] = [];
  for (let a = 0; a < attempts; a++) {
    for (let w = 0; w < webhooks; w++) {
      all.push({
        deliveryId: `msg_${w.toString(36)}${a.toString(36)}2Xk7qLcv9TnR4hWbJ0pYsE`,
        eventId: `evt_${a}_${w}_clb4qaopy0000vt24mlp`,
        webhookId: `clb4qaopy0000vt24mlp${String(w).padStart(5, '0')}`,
        eventType: 'TODO_CREATED',
        projectId: 'clakt90vu000bvt64hhffqleq',
        attempt: 1,
        outcome: 'DELIVERED',
        httpStatus: 200,
        durationMs: 87,
        error: null,
        timestamp: now - (attempts - a) * 1000,
        reason: null,
        nextAttemptAt: null,
        responseSnippet: snippet,
        source: { topic: 'blue.events', partition: w % 12, offset: String(1_000_000 + a * webhooks + w) },
      });
    }
  }
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < all.length; i += 500) await log.append(all.slice(i, i + 500));
  const cpu = process.cpuUsage(cpu0);
  const perAttempt = (await bytesUnder(redis, prefix)) / all.length;
  await deleteUnder(redis, prefix);
  return {
    shape,
    attempts: all.length,
    bytesPerAttempt: Math.round(perAttempt),
    cpuUsPerAttempt: Math.round((cpu.user + cpu.system) / all.length),
    // The sizing example in docs/contract.md: 100,000 webhooks with a full log each.
    gibFor100kWebhooks: Number(((perAttempt * attempts * 100_000) / 2 ** 30).toFixed(1)),
  };
}

const rows = [await measure('typical', '{"ok":true}'), await measure('1 KB answer', 'x'.repeat(1024))];
console.log(
  `| answer | attempts | Redis bytes an attempt | client CPU µs an attempt | GiB for 100,000 webhooks × ${attempts} |`,
);
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows)
  console.log(`| ${r.shape} | ${r.attempts} | ${r.bytesPerAttempt} | ${r.cpuUsPerAttempt} | ${r.gibFor100kWebhooks} |`);
redis.disconnect();
