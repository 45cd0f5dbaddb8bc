import {
  ALL_BUCKETS,
  BlueWebhooksError,
  bucketOf,
  bucketPrefix,
  errorMessage,
  type RedisClient,
  redisError,
} from '../shared/index.js';
import type { Subscription } from './subscription.js';

/** Where a record sits in the subscriptions topic; orders versions of one key. */
export interface RecordPosition {
  readonly partition: number;
  readonly offset: number;
  /** The record's updatedAt; for a tombstone or an unusable record, its Kafka timestamp (used only when nothing is stored). */
  readonly updatedAtMs: number;
}

export type TableChange =
  | { kind: 'put'; id: string; sub: Subscription }
  | { kind: 'delete'; id: string }
  /** The newest record for this id is unusable: the webhook stops matching until a valid one comes. */
  | { kind: 'inert'; id: string; reason: string };

export interface ApplyResult {
  applied: boolean;
  /** Projects whose candidates may have changed (before and after). */
  projects: string[];
}

// Deleted and inert markers outlive a replay window, then go; their only job is to stop a
// replayed older record from bringing a subscription back.
const MARKER_TTL_MS = 7 * 24 * 3600 * 1000;

// The layout, and why. Redis Cluster runs a script only on keys of one hash slot, so the table is
// cut into buckets (src/shared/redis.ts), each with its own copy of what a lookup needs:
//   {b}:idx:<project>:<event>  set of webhook ids       (projects of bucket b)
//   {b}:json                   hash id → subscription   (those with a project in bucket b)
//   {b}:ver:<id>               what of <id> bucket b holds: version and index keys
//   {b}:ready, {b}:building:*  the completeness marker of bucket b
//   {b}:home:<id>, {b}:live    the record of each id homed in b (b = bucket of the id)
// A lookup for a project reads one bucket, atomically. A change is applied in two steps: first at
// the id's home, which decides (newer or not) and says which buckets held the id before, then in
// each bucket it leaves or enters. Each bucket step is ordered by the record's position on its
// own, so replicas applying the same records in any interleaving, or a replica that died between
// the steps, leave the same result once a replica has applied the record (the home says "already
// applied" with code 2, and the bucket steps run again, harmlessly). A bucket whose master lost
// its data has lost its marker too, and refuses lookups until the table is rebuilt.

// The home step. Any version at or before the stored one in the same partition is a replay and
// is skipped. A put whose updatedAt is older than the stored one's is an out-of-order write and is
// skipped too (this also orders versions across partitions, should the topic ever gain
// partitions). A delete or an unusable record carries no updatedAt of its own: it applies when it
// comes later in the partition, and keeps the stored updatedAt, so an older put arriving after it
// cannot bring the webhook back. Returns {code, projects before, buckets before}: 0 skipped,
// 1 applied, 2 the record applied last, again: its bucket steps are repeated, over the buckets
// the version before it held (kept as 'pbkts'), in case its first application stopped halfway.
const APPLY_HOME = `
local home, live = KEYS[1], KEYS[2]
local id, part, off, upd, kind, json, prj, bkts = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local cur = redis.call('HMGET', home, 'part', 'off', 'upd', 'prj', 'bkts', 'aoff', 'pbkts')
local oldPrj, oldBkts = cur[4] or '[]', cur[5] or '[]'
if cur[1] == part and tonumber(cur[2]) >= off then
  if tonumber(cur[6]) == off then return {2, oldPrj, cur[7] or '[]'} end
  return {0, oldPrj, oldBkts}
end
if kind == 'put' and cur[3] and tonumber(cur[3]) > upd then
  redis.call('HSET', home, 'part', part, 'off', off)
  return {0, oldPrj, oldBkts}
end
if kind == 'put' then
  redis.call('HSET', home, 'part', part, 'off', off, 'aoff', off, 'upd', upd, 'state', 'live', 'json', json, 'prj', prj, 'bkts', bkts, 'pbkts', oldBkts)
  redis.call('PERSIST', home)
  redis.call('SADD', live, id)
else
  redis.call('HSET', home, 'part', part, 'off', off, 'aoff', off, 'upd', cur[3] or upd, 'state', kind, 'json', json, 'prj', '[]', 'bkts', '[]', 'pbkts', oldBkts)
  redis.call('PEXPIRE', home, ${MARKER_TTL_MS})
  redis.call('SREM', live, id)
end
return {1, oldPrj, oldBkts}
`;

// The bucket step: what bucket b holds of one id becomes this version (json '' = nothing), unless
// b already holds a later version from the same partition.
const APPLY_BUCKET = `
local ver, jsonKey = KEYS[1], KEYS[2]
local id, part, off, json, idx = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local cur = redis.call('HMGET', ver, 'part', 'off', 'idx')
if cur[1] == part and tonumber(cur[2]) > off then return 0 end
if cur[3] then
  for _, k in ipairs(cjson.decode(cur[3])) do redis.call('SREM', k, id) end
end
if json ~= '' then
  for _, k in ipairs(cjson.decode(idx)) do redis.call('SADD', k, id) end
  redis.call('HSET', jsonKey, id, json)
  redis.call('HSET', ver, 'part', part, 'off', off, 'idx', idx)
  redis.call('PERSIST', ver)
else
  redis.call('HDEL', jsonKey, id)
  redis.call('HSET', ver, 'part', part, 'off', off, 'idx', '[]')
  redis.call('PEXPIRE', ver, ${MARKER_TTL_MS})
end
return 1
`;

// Candidates of many (project, event type) pairs of one bucket in one call. Refuses to answer
// while the bucket is not marked complete (after a Redis flush or a master that lost its data),
// so nobody mistakes an empty table for "no match".
const LOOKUP = `
local ready, jsonKey = KEYS[1], KEYS[2]
if redis.call('EXISTS', ready) == 0 then return redis.error_reply('NOTREADY subscription table is being rebuilt') end
local out = {}
for i = 1, #ARGV do
  local subs = {}
  for _, id in ipairs(redis.call('SMEMBERS', ARGV[i])) do
    local json = redis.call('HGET', jsonKey, id)
    if json then subs[#subs + 1] = json end
  end
  out[i] = subs
end
return out
`;

// One subscription by id, from its home; the same readiness rule as LOOKUP.
const GET = `
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('NOTREADY subscription table is being rebuilt') end
local s = redis.call('HMGET', KEYS[1], 'state', 'json')
if s[1] ~= 'live' then return false end
return s[2]
`;

const MARK_READY = `
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1')
return 1
`;

const BUILD_TOKEN_TTL_MS = 24 * 3600 * 1000;

// Every key of the table sits under "<prefix>t3:". Format 3 is the bucketed layout above (format 2
// was one keyspace); a version with another format builds a table of its own beside this one, so
// replicas of two versions never read each other's index during a rolling upgrade.
const TABLE_FORMAT = 't3:';
const LOOKUP_CHUNK = 500;

type StoreRedis = RedisClient & {
  subsApplyHome(home: string, live: string, ...args: (string | number)[]): Promise<[number, string, string]>;
  subsApplyBucket(ver: string, json: string, ...args: (string | number)[]): Promise<number>;
  subsLookup(ready: string, json: string, ...indexKeys: string[]): Promise<string[][]>;
  subsGet(home: string, ready: string): Promise<string | null>;
  subsMarkReady(building: string, ready: string): Promise<number>;
};

/** The subscription table in Redis, shared by every replica. All keys start with `prefix`. */
export class SubscriptionStore {
  private readonly redis: StoreRedis;
  /** Where every key of the table starts. */
  readonly prefix: string;

  constructor(redis: RedisClient, keyPrefix: string) {
    this.prefix = keyPrefix + TABLE_FORMAT;
    this.redis = redis as StoreRedis;
    if (!('subsApplyHome' in redis)) {
      redis.defineCommand('subsApplyHome', { numberOfKeys: 2, lua: APPLY_HOME });
      redis.defineCommand('subsApplyBucket', { numberOfKeys: 2, lua: APPLY_BUCKET });
      redis.defineCommand('subsLookup', { numberOfKeys: 2, lua: LOOKUP });
      redis.defineCommand('subsGet', { numberOfKeys: 2, lua: GET });
      redis.defineCommand('subsMarkReady', { numberOfKeys: 2, lua: MARK_READY });
    }
  }

  /** Where the keys of bucket `bucket` of the table start. */
  bucketKey(bucket: number, name: string): string {
    return bucketPrefix(this.prefix, bucket) + name;
  }

  /**
   * The index set of one (project, event type) pair, in the project's bucket. Ids and types may
   * contain ':', so the project id is length-prefixed: project "P:TODO" with event "X" and
   * project "P" with event "TODO:X" get different keys.
   */
  indexKey(projectId: string, eventType: string): string {
    return this.bucketKey(bucketOf(projectId), `idx:${projectId.length}:${projectId}:${eventType}`);
  }

  /** The hash of subscription JSON that lookups in this project's bucket read. */
  jsonKey(projectId: string): string {
    return this.bucketKey(bucketOf(projectId), 'json');
  }

  /**
   * Applies changes in order: every home step at once, then every bucket step at once (two round
   * trips). Bucket steps of two versions of one id may land in any order: each is ordered by
   * position on its own.
   */
  async applyAll(changes: { change: TableChange; pos: RecordPosition }[]): Promise<ApplyResult[]> {
    if (changes.length === 0) return [];
    const placed = changes.map(({ change }) => placeChange(change, this));
    const homes = await this.all(
      'applying subscription changes',
      changes.map(({ change, pos }, i) => {
        const bucket = bucketOf(change.id);
        const { json, buckets } = placed[i]!;
        const projects = change.kind === 'put' ? change.sub.metadata.projectIds : [];
        return this.redis.subsApplyHome(
          this.bucketKey(bucket, `home:${change.id}`),
          this.bucketKey(bucket, 'live'),
          change.id,
          String(pos.partition),
          pos.offset,
          pos.updatedAtMs,
          change.kind,
          json,
          JSON.stringify(projects),
          JSON.stringify([...buckets.keys()]),
        );
      }),
    );
    const steps: Promise<number>[] = [];
    homes.forEach(([code, , oldBuckets], i) => {
      if (code === 0) return;
      const { change, pos } = changes[i]!;
      const { json, buckets } = placed[i]!;
      const touched = new Set<number>([...(JSON.parse(oldBuckets) as number[]), ...buckets.keys()]);
      for (const bucket of touched) {
        const keys = buckets.get(bucket);
        steps.push(
          this.redis.subsApplyBucket(
            this.bucketKey(bucket, `ver:${change.id}`),
            this.bucketKey(bucket, 'json'),
            change.id,
            String(pos.partition),
            pos.offset,
            keys ? json : '',
            JSON.stringify(keys ?? []),
          ),
        );
      }
    });
    await this.all('applying subscription changes', steps);
    return homes.map(([code, oldProjects], i) => {
      const change = changes[i]!.change;
      const projects = new Set<string>(JSON.parse(oldProjects) as string[]);
      if (change.kind === 'put') for (const p of change.sub.metadata.projectIds) projects.add(p);
      return { applied: code === 1, projects: [...projects] };
    });
  }

  /** Raw subscription JSON per (project, event type) pair, in the order asked. */
  async lookup(pairs: readonly { projectId: string; eventType: string }[]): Promise<string[][]> {
    if (pairs.length === 0) return [];
    // One call per bucket (a script runs in one slot), in chunks: a batch of many distinct pairs
    // must not become one call with that many arguments.
    const byBucket = new Map<number, number[]>();
    pairs.forEach((pair, i) => {
      const bucket = bucketOf(pair.projectId);
      const positions = byBucket.get(bucket);
      if (positions) positions.push(i);
      else byBucket.set(bucket, [i]);
    });
    const out: string[][] = new Array(pairs.length);
    const calls: Promise<void>[] = [];
    for (const [bucket, positions] of byBucket) {
      for (let i = 0; i < positions.length; i += LOOKUP_CHUNK) {
        const chunk = positions.slice(i, i + LOOKUP_CHUNK);
        const keys = chunk.map((at) => this.indexKey(pairs[at]!.projectId, pairs[at]!.eventType));
        calls.push(
          this.redis
            .subsLookup(this.bucketKey(bucket, 'ready'), this.bucketKey(bucket, 'json'), ...keys)
            .then((rows) => {
              chunk.forEach((at, j) => {
                out[at] = rows[j] ?? [];
              });
            }),
        );
      }
    }
    try {
      await Promise.all(calls);
    } catch (err) {
      throw this.lookupError(err, 'looking up subscriptions');
    }
    return out;
  }

  private lookupError(err: unknown, what: string): BlueWebhooksError {
    if (errorMessage(err).includes('NOTREADY')) {
      return new BlueWebhooksError('TABLE_NOT_READY', 'the subscription table is being rebuilt', { retriable: true });
    }
    return redisError(what, err);
  }

  /** The live subscription with this id, as JSON, or null when deleted, inert or unknown. */
  async get(id: string): Promise<string | null> {
    const bucket = bucketOf(id);
    try {
      return await this.redis.subsGet(this.bucketKey(bucket, `home:${id}`), this.bucketKey(bucket, 'ready'));
    } catch (err) {
      throw this.lookupError(err, 'reading a subscription');
    }
  }

  /**
   * Starts a (re)build by this replica: leaves a token in every bucket, which a flush of its
   * master would erase, so that `markReady` can tell a build that saw no flush from one whose
   * earlier writes were lost.
   */
  async beginBuild(token: string): Promise<void> {
    await this.all(
      'starting a table build',
      ALL_BUCKETS.map((bucket) =>
        this.redis.set(this.bucketKey(bucket, `building:${token}`), '1', 'PX', BUILD_TOKEN_TTL_MS),
      ),
    );
  }

  /**
   * Marks every bucket complete; false when the build's token is gone from any (its master was
   * flushed or failed over without its data meanwhile). The buckets that kept it are complete
   * and answer; the others wait for the next build.
   */
  async markReady(token: string): Promise<boolean> {
    const marked = await this.all(
      'marking the table ready',
      ALL_BUCKETS.map((bucket) =>
        this.redis.subsMarkReady(this.bucketKey(bucket, `building:${token}`), this.bucketKey(bucket, 'ready')),
      ),
    );
    return marked.every((one) => one === 1);
  }

  /** Whether every bucket is marked complete. */
  async isMarkedReady(): Promise<boolean> {
    const ready = await this.all(
      'checking the table',
      ALL_BUCKETS.map((bucket) => this.redis.exists(this.bucketKey(bucket, 'ready'))),
    );
    return ready.every((one) => one === 1);
  }

  async liveCount(): Promise<number> {
    const counts = await this.all(
      'counting subscriptions',
      ALL_BUCKETS.map((bucket) => this.redis.scard(this.bucketKey(bucket, 'live'))),
    );
    return counts.reduce((sum, n) => sum + n, 0);
  }

  /** Awaits calls issued together (one round trip with auto-pipelining, per master on a cluster). */
  private async all<T>(what: string, calls: Promise<T>[]): Promise<T[]> {
    try {
      return await Promise.all(calls);
    } catch (err) {
      throw redisError(what, err);
    }
  }
}

/** A change's JSON and, per bucket it belongs to, its index keys there. */
function placeChange(change: TableChange, store: SubscriptionStore): { json: string; buckets: Map<number, string[]> } {
  const buckets = new Map<number, string[]>();
  if (change.kind !== 'put') return { json: change.kind === 'inert' ? change.reason : '', buckets };
  const { projectIds, events } = change.sub.metadata;
  for (const projectId of projectIds) {
    const bucket = bucketOf(projectId);
    const keys = buckets.get(bucket) ?? [];
    buckets.set(bucket, keys);
    for (const event of events) keys.push(store.indexKey(projectId, event));
  }
  return { json: JSON.stringify(change.sub), buckets };
}
