import { type RedisClient, redisError, withScripts } from '../shared/index.js';

/** A delivery may go after `waitMs`, or (`deferMs`) the limit is too far ahead to wait for. */
export type RateDecision = { waitMs: number } | { deferMs: number };

// GCRA as a reservation: the key holds the theoretical arrival time (TAT) of the next delivery,
// in ms on Redis's clock, so every replica shares one schedule whatever its own clock says. A
// delivery takes the slot at max(TAT, now) and moves TAT one interval on; it waits until its
// slot. A slot further than maxWait ahead is not taken: the caller defers the delivery instead,
// and TAT does not move, so a deferred delivery costs the others nothing.
const RESERVE = `
local interval, maxWait = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > maxWait then return {0, math.ceil(wait)} end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(wait + interval) + 1000)
return {1, math.ceil(wait)}
`;

type RateRedis = RedisClient & {
  rateReserve(key: string, intervalMs: number, maxWaitMs: number): Promise<[number, number]>;
};

/**
 * Per-webhook rate limits (rateLimitPerSecond), held across all replicas in Redis: at most one
 * delivery per 1000 / rate ms is sent, whichever replica sends it. No burst beyond that: a limit
 * of 20/s never sends 21 within one second.
 */
export class RateLimiter {
  private readonly redis: RateRedis;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    /** Longest wait for a slot before the delivery is deferred (ENDPOINT_MAX_WAIT_MS). */
    private readonly maxWaitMs: number,
  ) {
    this.redis = withScripts<RateRedis>(redis, { rateReserve: { numberOfKeys: 1, lua: RESERVE } });
  }

  async reserve(webhookId: string, perSecond: number): Promise<RateDecision> {
    try {
      const [taken, waitMs] = await this.redis.rateReserve(
        `${this.prefix}rate:{${webhookId}}`,
        1000 / perSecond,
        this.maxWaitMs,
      );
      return taken === 1 ? { waitMs } : { deferMs: waitMs };
    } catch (err) {
      throw redisError('reserving a rate-limit slot', err);
    }
  }
}
