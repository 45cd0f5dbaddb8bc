import type { Redis } from 'ioredis';
import { BlueWebhooksError, errorMessage } from '../shared/errors.js';
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

// Applies one change atomically, so replicas applying the same records race harmlessly.
// Any version at or before the stored one in the same partition is a replay and is skipped. A put
// whose updatedAt is older than the stored one's is an out-of-order write and is skipped too (this
// also orders versions across partitions, should the topic ever gain partitions). A delete or an
// unusable record carries no updatedAt of its own: it applies when it comes later in the partition,
// and keeps the stored updatedAt, so an older put arriving after it cannot bring the webhook back.
const APPLY = `
local p, id, part, off, upd, kind, json, prj = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local key = p .. 'sub:' .. id
local cur = redis.call('HMGET', key, 'part', 'off', 'upd', 'idx', 'prj')
if cur[1] == part and tonumber(cur[2]) >= off then return {0, cur[5] or '[]'} end
if kind == 'put' and cur[3] and tonumber(cur[3]) > upd then
  redis.call('HSET', key, 'part', part, 'off', off)
  return {0, cur[5] or '[]'}
end
if cur[4] then
  for _, k in ipairs(cjson.decode(cur[4])) do redis.call('SREM', k, id) end
end
if kind == 'put' then
  for _, k in ipairs(cjson.decode(ARGV[9])) do redis.call('SADD', k, id) end
  redis.call('HSET', key, 'part', part, 'off', off, 'upd', upd, 'state', 'live', 'json', json, 'idx', ARGV[9], 'prj', prj)
  redis.call('PERSIST', key)
  redis.call('SADD', p .. 'subs:live', id)
else
  redis.call('HSET', key, 'part', part, 'off', off, 'upd', cur[3] or upd, 'state', kind, 'json', json, 'idx', '[]', 'prj', '[]')
  redis.call('PEXPIRE', key, ${MARKER_TTL_MS})
  redis.call('SREM', p .. 'subs:live', id)
end
return {1, cur[5] or '[]'}
`;

// Candidates of many (project, event type) pairs in one round trip. Refuses to answer while the
// table is not marked complete (after a Redis flush), so nobody mistakes an empty table for "no match".
const LOOKUP = `
local p = ARGV[1]
if redis.call('EXISTS', p .. 'subs:ready') == 0 then return redis.error_reply('NOTREADY subscription table is being rebuilt') end
local out = {}
for i = 2, #ARGV do
  local ids = redis.call('SMEMBERS', ARGV[i])
  local subs = {}
  for _, id in ipairs(ids) do
    local json = redis.call('HGET', p .. 'sub:' .. id, 'json')
    if json then subs[#subs + 1] = json end
  end
  out[#out + 1] = subs
end
return out
`;

// One subscription by id; the same readiness rule as LOOKUP.
const GET = `
local p, id = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. 'subs:ready') == 0 then return redis.error_reply('NOTREADY subscription table is being rebuilt') end
local s = redis.call('HMGET', p .. 'sub:' .. id, 'state', 'json')
if s[1] ~= 'live' then return false end
return s[2]
`;

const MARK_READY = `
local p, token = ARGV[1], ARGV[2]
if redis.call('DEL', p .. 'subs:building:' .. token) == 0 then return 0 end
redis.call('SET', p .. 'subs:ready', '1')
return 1
`;

const BUILD_TOKEN_TTL_MS = 24 * 3600 * 1000;

// Every key of the table sits under "<prefix>t2:". Format 2 length-prefixes the project id in index
// keys; a version with another format builds a table of its own beside this one, so replicas of
// two versions never read each other's index during a rolling upgrade.
const TABLE_FORMAT = 't2:';
const LOOKUP_CHUNK = 500;

type StoreRedis = Redis & {
  subsMarkReady(prefix: string, token: string): Promise<number>;
  subsGet(prefix: string, id: string): Promise<string | null>;
  subsApply(...args: (string | number)[]): Promise<[number, string]>;
  subsLookup(...args: string[]): Promise<string[][]>;
};

/** The subscription table in Redis, shared by every replica. All keys start with `prefix`. */
export class SubscriptionStore {
  private readonly redis: StoreRedis;
  /** Where every key of the table starts. */
  readonly prefix: string;

  constructor(redis: Redis, keyPrefix: string) {
    this.prefix = keyPrefix + TABLE_FORMAT;
    this.redis = redis as StoreRedis;
    if (!('subsApply' in redis)) {
      redis.defineCommand('subsApply', { numberOfKeys: 0, lua: APPLY });
      redis.defineCommand('subsLookup', { numberOfKeys: 0, lua: LOOKUP });
      redis.defineCommand('subsMarkReady', { numberOfKeys: 0, lua: MARK_READY });
      redis.defineCommand('subsGet', { numberOfKeys: 0, lua: GET });
    }
  }

  /**
   * The index set of one (project, event type) pair. Ids and types may contain ':', so the project
   * id is length-prefixed: project "P:TODO" with event "X" and project "P" with event "TODO:X"
   * get different keys.
   */
  indexKey(projectId: string, eventType: string): string {
    return `${this.prefix}idx:${projectId.length}:${projectId}:${eventType}`;
  }

  /** Applies changes in order, in one round trip. */
  async applyAll(changes: { change: TableChange; pos: RecordPosition }[]): Promise<ApplyResult[]> {
    if (changes.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const { change, pos } of changes) {
      const args: (string | number)[] = [this.prefix, change.id, String(pos.partition), pos.offset, pos.updatedAtMs];
      if (change.kind === 'put') {
        const { projectIds, events } = change.sub.metadata;
        // One JSON argument, not one argument per key: a subscription may have 20,000 index keys.
        const keys: string[] = [];
        for (const p of projectIds) for (const e of events) keys.push(this.indexKey(p, e));
        args.push('put', JSON.stringify(change.sub), JSON.stringify(projectIds), JSON.stringify(keys));
      } else {
        args.push(change.kind, change.kind === 'inert' ? change.reason : '', '[]');
      }
      (pipeline as unknown as StoreRedis).subsApply(...args);
    }
    const replies = await this.exec(pipeline, 'applying subscription changes');
    return replies.map((r, i) => {
      const [applied, oldProjects] = r as [number, string];
      const change = changes[i]!.change;
      const projects = new Set<string>(JSON.parse(oldProjects) as string[]);
      if (change.kind === 'put') for (const p of change.sub.metadata.projectIds) projects.add(p);
      return { applied: applied === 1, projects: [...projects] };
    });
  }

  /** Raw subscription JSON per (project, event type) pair, in the order asked. */
  async lookup(pairs: readonly { projectId: string; eventType: string }[]): Promise<string[][]> {
    if (pairs.length === 0) return [];
    try {
      // In chunks: a batch of many distinct pairs must not become one call with that many arguments.
      const chunks: Promise<string[][]>[] = [];
      for (let i = 0; i < pairs.length; i += LOOKUP_CHUNK) {
        const keys = pairs.slice(i, i + LOOKUP_CHUNK).map((k) => this.indexKey(k.projectId, k.eventType));
        chunks.push(this.redis.subsLookup(this.prefix, ...keys));
      }
      return (await Promise.all(chunks)).flat();
    } catch (err) {
      throw this.lookupError(err, 'looking up subscriptions');
    }
  }

  private lookupError(err: unknown, what: string): BlueWebhooksError {
    if (errorMessage(err).includes('NOTREADY')) {
      return new BlueWebhooksError('TABLE_NOT_READY', 'the subscription table is being rebuilt', { retriable: true });
    }
    return redisError(what, err);
  }

  /** The live subscription with this id, as JSON, or null when deleted, inert or unknown. */
  async get(id: string): Promise<string | null> {
    try {
      return await this.redis.subsGet(this.prefix, id);
    } catch (err) {
      throw this.lookupError(err, 'reading a subscription');
    }
  }

  /**
   * Starts a (re)build by this replica: leaves a token that a Redis flush would erase, so that
   * `markReady` can tell a build that saw no flush from one whose earlier writes were lost.
   */
  async beginBuild(token: string): Promise<void> {
    try {
      await this.redis.set(`${this.prefix}subs:building:${token}`, '1', 'PX', BUILD_TOKEN_TTL_MS);
    } catch (err) {
      throw redisError('starting a table build', err);
    }
  }

  /** Marks the table complete; false when the build's token is gone (Redis was flushed meanwhile). */
  async markReady(token: string): Promise<boolean> {
    try {
      return (await this.redis.subsMarkReady(this.prefix, token)) === 1;
    } catch (err) {
      throw redisError('marking the table ready', err);
    }
  }

  async isMarkedReady(): Promise<boolean> {
    try {
      return (await this.redis.exists(`${this.prefix}subs:ready`)) === 1;
    } catch (err) {
      throw redisError('checking the table', err);
    }
  }

  async liveCount(): Promise<number> {
    return this.redis.scard(`${this.prefix}subs:live`);
  }

  private async exec(pipeline: ReturnType<Redis['pipeline']>, what: string): Promise<unknown[]> {
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await pipeline.exec();
    } catch (err) {
      throw redisError(what, err);
    }
    if (!replies) throw redisError(what, new Error('pipeline returned nothing'));
    return replies.map(([err, r]) => {
      if (err) throw redisError(what, err);
      return r;
    });
  }
}

export function redisError(what: string, err: unknown): BlueWebhooksError {
  return new BlueWebhooksError('REDIS_UNAVAILABLE', `redis: ${what}: ${errorMessage(err)}`, { retriable: true, cause: err });
}
