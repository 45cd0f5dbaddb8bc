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

/**
 * Where a record sits in the subscriptions topic, which orders the versions of one key (README,
 * "Subscription records"): within a partition, the later offset wins.
 */
export interface RecordPosition {
  readonly partition: number;
  readonly offset: number;
  /**
   * Orders versions of one key found in two partitions, which happens only after the topic's
   * partition count changed: the later wins. A put's updatedAt clamped to the record's Kafka
   * timestamp (a producer's clock running ahead cannot lock a webhook); for a tombstone or an
   * unusable record, the Kafka timestamp.
   */
  readonly atMs: number;
}

/** A change and where its record sits: what `applyAll` takes. */
export interface PlacedChange {
  readonly change: TableChange;
  readonly pos: RecordPosition;
}

export type TableChange =
  | { kind: 'put'; id: string; sub: Subscription }
  | { kind: 'delete'; id: string }
  /** The newest record for this id is unusable: the webhook stops matching until a valid one comes. */
  | { kind: 'inert'; id: string; reason: string };

/** A webhook a lookup found, and the version (the position of its record, `partition:offset`) its index entry is from. */
export interface Candidate {
  readonly id: string;
  readonly version: string;
}

/** A live subscription's JSON, read from its home, and its version. */
export interface StoredSubscription {
  readonly version: string;
  readonly json: string;
}

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
//   {b}:ver:<id>               what of <id> bucket b holds: position and index keys
//   {b}:ready, {b}:building:*  the completeness marker of bucket b
//   {b}:home:<id>, {b}:live    the record of each id homed in b (b = bucket of the id), and its JSON
// A subscription's JSON is kept once, at its home: a copy in each bucket of its projects made a
// 236 KB subscription with 64 projects cost 16.5 MiB. A lookup for a project reads one bucket,
// atomically, and answers ids with the version each bucket indexed; the JSON of a version a
// replica has not compiled yet is read from the homes in a second round trip (SubscriptionTable).
// A change is applied in two steps: first at
// the id's home, which decides (newer or not) and says which buckets held the id before, then in
// each bucket it leaves or enters. Each bucket step is ordered by the record's position on its
// own, so replicas applying the same records in any interleaving, or a replica that died between
// the steps, leave the same result once a replica has applied the record (the home says "already
// applied" with code 2, and the bucket steps run again, harmlessly). A bucket whose master lost
// its data has lost its marker too, and refuses lookups until the table is rebuilt.

// Is (part, off, at) later than what is stored (curPart, curOff, curAt)? The topic decides: in one
// partition the later offset wins, whatever the record claims (a producer's clock may run ahead),
// and a later record always replaces an earlier one, put, disable and delete alike. A version in
// another partition (the topic gained partitions, and the key moved) is later when its time
// (RecordPosition.atMs) is, the higher partition breaking a tie. `equal`: whether the same
// position counts as later (a bucket step repeated).
const IS_LATER = `
local function isLater(curPart, curOff, curAt, part, off, at, equal)
  if not curPart then return true end
  if curPart == part then
    local c = tonumber(curOff)
    return tonumber(off) > c or (equal and tonumber(off) == c)
  end
  local c = tonumber(curAt)
  return tonumber(at) > c or (tonumber(at) == c and tonumber(part) > tonumber(curPart))
end
`;

// The home step. Returns {code, projects before, buckets before}: 0 not later (a replay, or an
// older version from another partition), 1 applied, 2 the record applied last, again: its bucket
// steps are repeated over the buckets the version before it held (kept as 'pbkts'), in case its
// first application stopped halfway. One exception to "again": an unusable record at the
// position of the put applied last replaces it. That is how a put whose application Redis refused
// is made inert (SubscriptionApplier), and its buckets are then the put's and those before it.
// A delete or an unusable record is kept as a marker (for MARKER_TTL_MS), so that a replayed
// older record cannot bring the webhook back.
const APPLY_HOME = `${IS_LATER}
local home, live = KEYS[1], KEYS[2]
local id, part, off, at, kind, json, prj, bkts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local cur = redis.call('HMGET', home, 'part', 'off', 'at', 'prj', 'bkts', 'pbkts', 'state')
local oldPrj, before = cur[4] or '[]', cur[5] or '[]'
if cur[1] == part and tonumber(cur[2]) == tonumber(off) then
  if kind ~= 'inert' or cur[7] == 'inert' then return {2, oldPrj, cur[6] or '[]'} end
  local seen, all = {}, {}
  for _, list in ipairs({cjson.decode(before), cjson.decode(cur[6] or '[]')}) do
    for _, b in ipairs(list) do
      if not seen[b] then seen[b] = true; all[#all + 1] = b end
    end
  end
  before = #all == 0 and '[]' or cjson.encode(all)
elseif not isLater(cur[1], cur[2], cur[3], part, off, at, false) then
  return {0, oldPrj, before}
end
if kind == 'put' then
  redis.call('HSET', home, 'part', part, 'off', off, 'at', at, 'state', 'live', 'json', json, 'prj', prj, 'bkts', bkts, 'pbkts', before)
  redis.call('PERSIST', home)
  redis.call('SADD', live, id)
else
  redis.call('HSET', home, 'part', part, 'off', off, 'at', at, 'state', kind, 'json', json, 'prj', '[]', 'bkts', '[]', 'pbkts', before)
  redis.call('PEXPIRE', home, ${MARKER_TTL_MS})
  redis.call('SREM', live, id)
end
return {1, oldPrj, before}
`;

// The bucket step: the index keys bucket b holds for one id become this version's (none: '[]'),
// unless b already holds a later version.
const APPLY_BUCKET = `${IS_LATER}
local ver = KEYS[1]
local id, part, off, at, idx = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HMGET', ver, 'part', 'off', 'at', 'idx')
if not isLater(cur[1], cur[2], cur[3], part, off, at, true) then return 0 end
if cur[4] then
  for _, k in ipairs(cjson.decode(cur[4])) do redis.call('SREM', k, id) end
end
local keys = cjson.decode(idx)
for _, k in ipairs(keys) do redis.call('SADD', k, id) end
redis.call('HSET', ver, 'part', part, 'off', off, 'at', at, 'idx', idx)
if #keys > 0 then redis.call('PERSIST', ver) else redis.call('PEXPIRE', ver, ${MARKER_TTL_MS}) end
return 1
`;

// Candidates of many (project, event type) pairs of one bucket in one call: for each pair, id and
// version, one after the other. ARGV[1] is where the bucket's 'ver:<id>' keys start, the rest are
// index keys (all in the bucket's slot). Refuses to answer while the bucket is not marked complete
// (after a Redis flush or a master that lost its data), so nobody mistakes an empty table for "no
// match".
const LOOKUP = `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOTREADY subscription table is being rebuilt') end
local out = {}
for i = 2, #ARGV do
  local found = {}
  for _, id in ipairs(redis.call('SMEMBERS', ARGV[i])) do
    local v = redis.call('HMGET', ARGV[1] .. id, 'part', 'off')
    if v[1] then
      found[#found + 1] = id
      found[#found + 1] = v[1] .. ':' .. v[2]
    end
  end
  out[i - 1] = found
end
return out
`;

// One live subscription by id, from its home: {version, json}; the same readiness rule as LOOKUP.
const GET = `
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('NOTREADY subscription table is being rebuilt') end
local s = redis.call('HMGET', KEYS[1], 'state', 'part', 'off', 'json')
if s[1] ~= 'live' then return false end
return {s[2] .. ':' .. s[3], s[4]}
`;

const MARK_READY = `
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1')
return 1
`;

const BUILD_TOKEN_TTL_MS = 24 * 3600 * 1000;

// Every key of the table sits under "<prefix>t4:". Format 4 orders versions by their position in
// the topic (format 3 let a later updatedAt win; format 2 was one keyspace); a version with another
// format builds a table of its own beside this one, so replicas of two versions never read each
// other's table during a rolling upgrade.
const TABLE_FORMAT = 't4:';
const LOOKUP_CHUNK = 500;

type StoreRedis = RedisClient & {
  subsApplyHome(home: string, live: string, ...args: (string | number)[]): Promise<[number, string, string]>;
  subsApplyBucket(ver: string, ...args: (string | number)[]): Promise<number>;
  subsLookup(ready: string, verPrefix: string, ...indexKeys: string[]): Promise<string[][]>;
  subsGet(home: string, ready: string): Promise<[string, string] | null>;
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
      redis.defineCommand('subsApplyBucket', { numberOfKeys: 1, lua: APPLY_BUCKET });
      redis.defineCommand('subsLookup', { numberOfKeys: 1, lua: LOOKUP });
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

  /**
   * Applies changes in order: every home step at once, then every bucket step at once (two round
   * trips). Bucket steps of two versions of one id may land in any order: each is ordered by
   * position on its own.
   */
  async applyAll(changes: readonly PlacedChange[]): Promise<ApplyResult[]> {
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
          String(pos.offset),
          String(pos.atMs),
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
      const { buckets } = placed[i]!;
      const touched = new Set<number>([...(JSON.parse(oldBuckets) as number[]), ...buckets.keys()]);
      for (const bucket of touched) {
        const keys = buckets.get(bucket);
        steps.push(
          this.redis.subsApplyBucket(
            this.bucketKey(bucket, `ver:${change.id}`),
            change.id,
            String(pos.partition),
            String(pos.offset),
            String(pos.atMs),
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

  /** The webhooks indexed under each (project, event type) pair, in the order asked. */
  async lookup(pairs: readonly { projectId: string; eventType: string }[]): Promise<Candidate[][]> {
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
    const out: Candidate[][] = new Array(pairs.length);
    const calls: Promise<void>[] = [];
    for (const [bucket, positions] of byBucket) {
      for (let i = 0; i < positions.length; i += LOOKUP_CHUNK) {
        const chunk = positions.slice(i, i + LOOKUP_CHUNK);
        const keys = chunk.map((at) => this.indexKey(pairs[at]!.projectId, pairs[at]!.eventType));
        calls.push(
          this.redis
            .subsLookup(this.bucketKey(bucket, 'ready'), this.bucketKey(bucket, 'ver:'), ...keys)
            .then((rows) => {
              chunk.forEach((at, j) => {
                const row = rows[j] ?? [];
                const found: Candidate[] = [];
                for (let k = 0; k < row.length; k += 2) found.push({ id: row[k]!, version: row[k + 1]! });
                out[at] = found;
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

  /** The live subscription with this id, or null when deleted, inert or unknown. */
  async get(id: string): Promise<StoredSubscription | null> {
    const bucket = bucketOf(id);
    try {
      const found = await this.redis.subsGet(this.bucketKey(bucket, `home:${id}`), this.bucketKey(bucket, 'ready'));
      return found && { version: found[0], json: found[1] };
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
