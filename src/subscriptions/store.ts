import {
  ALL_BUCKETS,
  BlueWebhooksError,
  bucketOf,
  bucketPrefix,
  errorMessage,
  type RedisClient,
  redisError,
  withScripts,
} from '../shared/index.js';
import { STORE_SCRIPTS } from './store-scripts.js';
import type { Subscription } from './subscription.js';

/**
 * Where a record sits in the subscriptions topic, which orders the versions of one key
 * (docs/design.md#how-it-works): within a partition, the later offset wins.
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
    this.redis = withScripts<StoreRedis>(redis, STORE_SCRIPTS);
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
