// What a bench's keys hold in Redis: the sum of MEMORY USAGE of every key under a prefix, and their removal.
import type { Redis } from 'ioredis';

async function keysUnder(redis: Redis, prefix: string, each: (keys: string[]) => Promise<void>): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await each(keys);
  } while (cursor !== '0');
}

/** Bytes of every key under `prefix`. */
export async function bytesUnder(redis: Redis, prefix: string): Promise<number> {
  let total = 0;
  await keysUnder(redis, prefix, async (keys) => {
    const sizes = await Promise.all(keys.map((key) => redis.memory('USAGE', key, 'SAMPLES', 0)));
    total += sizes.reduce<number>((sum, n) => sum + (n ?? 0), 0);
  });
  return total;
}

/** Deletes every key under `prefix`. */
export async function deleteUnder(redis: Redis, prefix: string): Promise<void> {
  await keysUnder(redis, prefix, async (keys) => {
    await redis.del(...keys);
  });
}
