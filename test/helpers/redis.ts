import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { defer } from './defer.js';
import { stackEnv } from './env.js';

/** A Redis client and a key prefix of the test's own; its keys are deleted when the test ends. */
export function testRedis(t: TestContext): { redis: Redis; prefix: string } {
  const prefix = `test:${randomBytes(6).toString('hex')}:`;
  const redis = new Redis(stackEnv().REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 3 });
  defer(t, async () => {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
  });
  return { redis, prefix };
}
