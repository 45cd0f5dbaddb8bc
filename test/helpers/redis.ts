import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { Cluster, type Redis } from 'ioredis';
import { createRedisClient, type RedisClient } from '../../src/shared/redis.js';
import { defer } from './defer.js';
import { stackEnv } from './env.js';

/**
 * A client for where the service's keys live in this run: the Redis Cluster named by
 * REDIS_CLUSTER_NODES when `npm run test:cluster` set it, else the stack's Redis.
 */
export function serviceRedis(options: { enableAutoPipelining?: boolean } = {}): RedisClient {
  const clusterNodes = process.env.REDIS_CLUSTER_NODES?.split(',') ?? [];
  return createRedisClient({ url: stackEnv().REDIS_URL, clusterNodes }, { maxRetriesPerRequest: 3, ...options });
}

/**
 * Deletes every key starting with `prefix` (on every master of a cluster); the count deleted.
 * The subscription table's completeness markers (`…:ready`) go last: a replica that sees one gone
 * rebuilds the table at once, and keys deleted after that would take its new rows with them (a
 * flushed-table test once counted one of two subscriptions back for that reason).
 */
export async function deleteKeys(redis: RedisClient, prefix: string): Promise<number> {
  // A cluster client knows its masters only once it has loaded the slot map.
  if (redis instanceof Cluster && redis.status !== 'ready')
    await new Promise((resolve) => redis.once('ready', resolve));
  const found: Array<{ node: Redis; key: string }> = [];
  for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      for (const key of keys) found.push({ node, key });
      cursor = next;
    } while (cursor !== '0');
  }
  const isMarker = (key: string) => key.endsWith(':ready');
  let deleted = 0;
  // One DEL per key: on a cluster, keys of one call must share a slot.
  for (const { node, key } of found.filter((one) => !isMarker(one.key))) deleted += await node.del(key);
  for (const { node, key } of found.filter((one) => isMarker(one.key))) deleted += await node.del(key);
  return deleted;
}

/**
 * A Redis client and a key prefix of the test's own; its keys are deleted when the test ends.
 * `enableAutoPipelining` as the service's own client has it (src/app.ts).
 */
export function testRedis(
  t: TestContext,
  options: { enableAutoPipelining?: boolean } = {},
): { redis: RedisClient; prefix: string } {
  const prefix = `test:${randomBytes(6).toString('hex')}:`;
  const redis = serviceRedis(options);
  defer(t, async () => {
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });
  return { redis, prefix };
}
