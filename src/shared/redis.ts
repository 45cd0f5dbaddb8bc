// The one Redis client of a process, single node or Redis Cluster, and what every Redis user
// shares: how an id picks its slot group, and the error a failed call becomes.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { BlueWebhooksError, errorMessage } from './errors.js';

/** Either client; every call the service makes exists on both. */
export type RedisClient = Redis | Cluster;

export interface RedisSettings {
  /** REDIS_URL: the server, or with `clusterNodes` where credentials and TLS come from. */
  readonly url: string;
  /** REDIS_CLUSTER_NODES: seeds of a Redis Cluster; empty for a single node. */
  readonly clusterNodes: readonly string[];
}

// Why buckets. Redis Cluster runs a script only when every key it touches sits in one hash slot,
// and the service's scripts touch several keys (a subscription and its index sets; a circuit and
// the set of open circuits). Putting everything under one hash tag would run, but on one master
// only. A tag per id would spread keys but leave nowhere to keep what many ids share (which
// circuits are open; whether the table is complete). So ids are hashed into a fixed number of
// buckets, one hash tag each (`{0}` … `{63}`): what a script needs lives in one bucket, and the
// buckets land on slots spread over the masters. 64 buckets are enough to spread over a few
// dozen masters, and few enough that reading one key of every bucket stays cheap.
export const REDIS_BUCKETS = 64;

/** The bucket of an id: FNV-1a of its UTF-16 code units, modulo REDIS_BUCKETS. Stable across versions. */
export function bucketOf(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % REDIS_BUCKETS;
}

/** Where the keys of one bucket start: the prefix, then the bucket's hash tag. */
export function bucketPrefix(keyPrefix: string, bucket: number): string {
  return `${keyPrefix}{${bucket}}:`;
}

/** Every bucket number, for what reads or marks all of them. */
export const ALL_BUCKETS: readonly number[] = Array.from({ length: REDIS_BUCKETS }, (_, bucket) => bucket);

/** The process's Redis client: a Cluster client when cluster seeds are given, else a single node. */
export function createRedisClient(settings: RedisSettings, options: RedisOptions): RedisClient {
  if (settings.clusterNodes.length === 0) return new Redis(settings.url, options);
  const url = new URL(settings.url);
  const nodeOptions: RedisOptions = {
    ...options,
    username: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  return new Cluster(
    settings.clusterNodes.map((node) => {
      const at = node.lastIndexOf(':');
      return { host: node.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(node.slice(at + 1)) };
    }),
    {
      redisOptions: nodeOptions,
      enableAutoPipelining: options.enableAutoPipelining ?? false,
      enableOfflineQueue: options.enableOfflineQueue ?? true,
      clusterRetryStrategy: options.retryStrategy ? (times) => options.retryStrategy!(times) ?? null : undefined,
      // A failover moves slots: follow MOVED/ASK and refresh the slot map rather than fail at once.
      maxRedirections: 16,
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
    },
  );
}

// Redis's answers that mean "not now" rather than "never": a server loading its data or running a
// long script, a cluster failing over (slots moving, a replica not yet promoted), a write refused
// for lack of memory or a failed snapshot. Every other error reply (a script error, WRONGTYPE, a
// wrong argument) refuses the command itself, and the same command would be refused again.
const TRANSIENT_REPLY = /^(?:LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS|MISCONF|OOM|MOVED|ASK)\b/;

/** A Lua script, with its number of keys (without it, each call passes the count: see runScript). */
export interface ScriptDefinition {
  lua: string;
  numberOfKeys?: number;
}

/**
 * Defines `scripts` on the client as commands of their own names (ioredis sends EVALSHA, and
 * EVAL when Redis does not know the script yet); a name the client has already is left as it is,
 * so every user of one client may define its scripts. Returns the client, typed with them.
 */
export function withScripts<T extends RedisClient>(redis: RedisClient, scripts: Record<string, ScriptDefinition>): T {
  for (const [name, script] of Object.entries(scripts)) if (!(name in redis)) redis.defineCommand(name, script);
  return redis as T;
}

/**
 * Runs a script defined without a fixed key count (`defineCommand(name, { lua })`) on `keys`, all
 * of one slot, as a pipeline of its own. Why: ioredis's auto-pipelining on a cluster takes a call's
 * slot from its first argument, which for such a script is the key count, so calls for different
 * slots shared one pipeline and the cluster refused it; the callers' errors went unseen (the
 * breaker's success counts were all lost). A pipeline finds the slot from the keys.
 */
export async function runScript<T>(
  redis: RedisClient,
  name: string,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<T> {
  const pipeline = redis.pipeline() as unknown as Record<
    string,
    (...callArgs: (string | number)[]) => { exec(): Promise<[Error | null, unknown][] | null> }
  >;
  const replies = await pipeline[name]!(keys.length, ...keys, ...args).exec();
  const [err, answer] = replies?.[0] ?? [new Error(`${name}: no reply`), null];
  if (err) throw err;
  return answer as T;
}

/**
 * The error a failed Redis call becomes, classified by its kind, not by who called: an error
 * reply that no retry can change is final (REDIS_REJECTED, and the record it served ends); a
 * connection-level fault, or a reply that says "not now", waits for the infrastructure
 * (REDIS_UNAVAILABLE, retriable).
 */
export function redisError(what: string, err: unknown): BlueWebhooksError {
  if (err instanceof BlueWebhooksError) return err;
  if (isRejection(err)) {
    return new BlueWebhooksError('REDIS_REJECTED', `redis refused ${what}: ${errorMessage(err)}`, { cause: err });
  }
  return new BlueWebhooksError('REDIS_UNAVAILABLE', `redis: ${what}: ${errorMessage(err)}`, {
    retriable: true,
    cause: err,
  });
}

/** An error reply from the server (ioredis's ReplyError) that is not one of the transient ones. */
function isRejection(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError' && !TRANSIENT_REPLY.test(err.message);
}
