import type { Metrics } from '../metrics/index.js';
import {
  ALL_BUCKETS,
  bucketOf,
  bucketPrefix,
  errorMessage,
  type Logger,
  type RedisClient,
  redisError,
  runScript,
  withScripts,
} from '../shared/index.js';

export interface CircuitBreakerOptions {
  redis: RedisClient;
  prefix: string;
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** Failure share over the window that opens it (with at least minRequests). */
  failureRate: number;

  windowMs: number;

  minRequests: number;
  /** While open, one probe per this interval, across all replicas. */
  probeIntervalMs: number;
  /** How often this replica refreshes its view of open circuits. Default 1000 ms. */
  refreshMs?: number;
  /** DISABLE_AFTER: open this long, a circuit is reported once through `onDisableRecommended`. */
  disableAfterMs: number;
  /** Publishes the disable_recommended status event; called by exactly one replica per open period. */
  onDisableRecommended: (webhookId: string, consecutiveFailures: number) => Promise<void>;
  metrics: Metrics;
  log: Logger;
}

/** What may happen to a delivery: go ahead, go ahead as the probe, or wait (circuit open). */
export type Admission = 'closed' | 'probe' | 'open';

export interface Transition {
  state: 'opened' | 'closed';
  consecutiveFailures: number;
}

// Each script gets the circuit's hash as KEYS[1] and the prefix of its bucket (src/shared/redis.ts)
// as ARGV[1]: the keys it derives from that prefix (the probe lock, the bucket's set of open
// circuits) share the hash's slot, so the scripts run on a Redis Cluster.

// One attempt's result, atomically: counts consecutive failures and a fixed window, and opens or
// closes the circuit. Only the call that changes the state reports a transition, so exactly one
// replica publishes each status change; every call answers the state, so that a replica whose
// failure finds the circuit open (another replica opened it) holds back at once, not at its next
// refresh.
const RECORD = `
local p, id, ok, now = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local threshold, rate, window, minReq = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local earlier = tonumber(ARGV[9])
local key = KEYS[1]
local s = redis.call('HMGET', key, 'state', 'consec', 'wstart', 'wtotal', 'wfail')
local state, consec = s[1] or 'closed', tonumber(s[2] or '0')
local wstart, wtotal, wfail = tonumber(s[3] or now), tonumber(s[4] or '0'), tonumber(s[5] or '0')
if now - wstart >= window then wstart, wtotal, wfail = now, 0, 0 end
wtotal = wtotal + earlier + 1
if ok then consec = 0 else consec = consec + 1; wfail = wfail + 1 end
local transition = ''
if state == 'open' then
  if ok then
    state, transition, wstart, wtotal, wfail = 'closed', 'closed', now, 0, 0
    redis.call('SREM', p .. 'cb:open', id)
    redis.call('DEL', p .. 'cb:probe:' .. id)
    redis.call('HDEL', key, 'openedAt', 'recommended')
  end
elseif not ok and (consec >= threshold or (wtotal >= minReq and wfail / wtotal > rate)) then
  state, transition = 'open', 'opened'
  redis.call('SADD', p .. 'cb:open', id)
  redis.call('HSET', key, 'openedAt', now)
end
redis.call('HSET', key, 'state', state, 'consec', consec, 'wstart', wstart, 'wtotal', wtotal, 'wfail', wfail)
redis.call('PEXPIRE', key, 30 * 86400000)
return {transition, consec, state}
`;

// Successes counted in process since the last flush, for the circuits of one bucket (KEYS, all in
// its slot; ARGV[i + 2] is the count of KEYS[i]): they only add to each window's total. One call a
// bucket and a second, however many webhooks had successes: at most 64 calls a second.
const COUNT = `
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[i + 2])
  local wstart = tonumber(redis.call('HGET', key, 'wstart') or now)
  if now - wstart >= window then
    redis.call('HSET', key, 'wstart', now, 'wtotal', n, 'wfail', 0)
  else
    redis.call('HINCRBY', key, 'wtotal', n)
  end
  redis.call('PEXPIRE', key, 30 * 86400000)
end
`;

/** Most circuits one COUNT call carries (a bigger bucket takes several calls). */
const COUNT_CHUNK = 500;

// Lets one probe through per interval while open, whichever replica asks first.
const ADMIT = `
local p, id, interval = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return 'closed' end
if redis.call('SET', p .. 'cb:probe:' .. id, '1', 'NX', 'PX', interval) then return 'probe' end
return 'open'
`;

// Open for disableAfter: claims the one disable_recommended report of this open period (the
// replica that gets 1 publishes it); returns the consecutive failures, or -1.
const RECOMMEND = `
local p, id, now, disableAfter = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local key = KEYS[1]
local s = redis.call('HMGET', key, 'state', 'openedAt', 'recommended', 'consec')
if s[1] ~= 'open' or not s[2] or s[3] or now - tonumber(s[2]) < disableAfter then return -1 end
redis.call('HSET', key, 'recommended', now)
return tonumber(s[4] or '0')
`;

type BreakerRedis = RedisClient & {
  cbRecord(key: string, ...args: (string | number)[]): Promise<[string, number, string]>;
  cbAdmit(key: string, ...args: (string | number)[]): Promise<Admission>;
  cbRecommend(key: string, ...args: (string | number)[]): Promise<number>;
};

/**
 * Per-webhook circuit breakers whose state lives in Redis, shared by every replica. Each replica
 * keeps a view of which circuits are open (refreshed every second, and at once on its own
 * transitions), so a closed circuit, the common case, costs no Redis call before an attempt.
 * A success on a closed circuit for which this replica has seen no failure cannot change any
 * state: it is only counted, and the counts reach Redis once a second (the failure-rate window's
 * total). So a healthy endpoint costs no Redis call per delivery at all. Consecutive failures
 * are reset by the successes of replicas that saw failures, which is where it matters.
 */
export class CircuitBreaker {
  private readonly redis: BreakerRedis;
  private open = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  /** Webhooks with a failure recorded here since their last success was recorded in Redis. */
  private readonly suspect = new Set<string>();
  /** Successes counted here and not yet in Redis. */
  private successes = new Map<string, number>();
  private lastRecommendCheck = 0;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.redis = withScripts<BreakerRedis>(options.redis, {
      cbRecord: { numberOfKeys: 1, lua: RECORD },
      cbAdmit: { numberOfKeys: 1, lua: ADMIT },
      cbCount: { lua: COUNT },
      cbRecommend: { numberOfKeys: 1, lua: RECOMMEND },
    });
  }

  /** A circuit's hash, then its bucket's prefix (whose 'cb:open' set and probe locks share the hash's slot), then its id. */
  private circuit(webhookId: string): [key: string, bucketPrefix: string, webhookId: string] {
    const prefix = bucketPrefix(this.options.prefix, bucketOf(webhookId));
    return [`${prefix}cb:${webhookId}`, prefix, webhookId];
  }

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  isOpen(webhookId: string): boolean {
    return this.open.has(webhookId);
  }

  /** Whether a delivery to this webhook may be attempted now: 'closed' at once in the common case. */
  admit(webhookId: string): Admission | Promise<Admission> {
    if (!this.open.has(webhookId)) return 'closed';
    return this.admitOpen(webhookId);
  }

  private async admitOpen(webhookId: string): Promise<Admission> {
    try {
      const a = await this.redis.cbAdmit(...this.circuit(webhookId), this.options.probeIntervalMs);
      if (a === 'closed') this.open.delete(webhookId);
      return a;
    } catch (err) {
      throw redisError('circuit admission', err);
    }
  }

  /** Records an attempt's result; returns the transition it caused, if any (null at once in the common case). */
  record(webhookId: string, ok: boolean): null | Promise<Transition | null> {
    if (ok && !this.open.has(webhookId) && !this.suspect.has(webhookId)) {
      this.successes.set(webhookId, (this.successes.get(webhookId) ?? 0) + 1);
      return null;
    }
    return this.recordInRedis(webhookId, ok);
  }

  private async recordInRedis(webhookId: string, ok: boolean): Promise<Transition | null> {
    const options = this.options;
    const earlier = this.successes.get(webhookId) ?? 0;
    this.successes.delete(webhookId);
    let reply: [string, number, string];
    try {
      reply = await this.redis.cbRecord(
        ...this.circuit(webhookId),
        ok ? '1' : '0',
        Date.now(),
        options.failureThreshold,
        options.failureRate,
        options.windowMs,
        options.minRequests,
        earlier,
      );
    } catch (err) {
      this.successes.set(webhookId, (this.successes.get(webhookId) ?? 0) + earlier);
      throw redisError('circuit record', err);
    }
    if (ok) this.suspect.delete(webhookId);
    else this.suspect.add(webhookId);
    const [transition, consecutiveFailures, state] = reply;
    if (state === 'open') this.open.add(webhookId);
    else this.open.delete(webhookId);
    if (transition !== 'opened' && transition !== 'closed') return null;
    return { state: transition, consecutiveFailures };
  }

  private async refresh(): Promise<void> {
    const now = Date.now();
    this.flushSuccesses(now);
    try {
      const open = await Promise.all(
        ALL_BUCKETS.map((bucket) => this.redis.smembers(`${bucketPrefix(this.options.prefix, bucket)}cb:open`)),
      );
      this.open = new Set(open.flat());
      this.options.metrics.unhealthyEndpoints.set(this.open.size);
    } catch (err) {
      this.options.log.warn('could not refresh circuit states', { error: errorMessage(err) });
      return;
    }
    // Long-open circuits are looked at less often than the open set: a tenth of DISABLE_AFTER, 1 s to 1 min.
    if (now - this.lastRecommendCheck < Math.min(60_000, Math.max(1000, this.options.disableAfterMs / 10))) return;
    this.lastRecommendCheck = now;
    for (const id of this.open) void this.recommendDisable(id, now);
  }

  /** Sends the successes counted here since the last flush: one COUNT call per bucket. */
  private flushSuccesses(now: number): void {
    // By bucket prefix: the circuits of one bucket share its slot.
    const byBucket = new Map<string, [key: string, count: number][]>();
    for (const [webhookId, count] of this.successes) {
      const [key, prefix] = this.circuit(webhookId);
      const circuits = byBucket.get(prefix) ?? [];
      circuits.push([key, count]);
      byBucket.set(prefix, circuits);
    }
    this.successes = new Map();
    for (const circuits of byBucket.values()) {
      for (let i = 0; i < circuits.length; i += COUNT_CHUNK) {
        const chunk = circuits.slice(i, i + COUNT_CHUNK);
        const keys = chunk.map(([key]) => key);
        const counts = chunk.map(([, count]) => count);
        // ARGV: now, window, then one count a key.
        runScript(this.redis, 'cbCount', keys, [now, this.options.windowMs, ...counts]).catch(() => {
          // Lost counts only make the failure rate look worse for one window; not worth a retry loop.
        });
      }
    }
  }

  /**
   * Blue's core owns the subscription record and decides; this service never edits the compacted
   * topic. It only says, once per open period, that the endpoint has been UNHEALTHY for DISABLE_AFTER.
   */
  private async recommendDisable(webhookId: string, now: number): Promise<void> {
    try {
      const consecutiveFailures = await this.redis.cbRecommend(
        ...this.circuit(webhookId),
        now,
        this.options.disableAfterMs,
      );
      if (consecutiveFailures < 0) return;
      await this.options.onDisableRecommended(webhookId, consecutiveFailures).catch(async (err: unknown) => {
        await this.redis.hdel(this.circuit(webhookId)[0], 'recommended'); // claimed, not published: next check
        throw err;
      });
      this.options.log.warn('endpoint UNHEALTHY for DISABLE_AFTER; disable recommended', { webhookId });
    } catch (err) {
      this.options.log.warn('could not report a disable recommendation', { webhookId, error: errorMessage(err) });
    }
  }
}
