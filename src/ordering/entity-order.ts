import { createHash } from 'node:crypto';
import { type RedisClient, redisError, withScripts } from '../shared/index.js';

/** One webhook's deliveries of one entity (the event's Kafka key). */
export interface OrderKey {
  readonly webhookId: string;
  /** A digest of the Kafka key: any bytes, fixed length. */
  readonly entity: string;
}

/**
 * What `admit` or `hold` did with a delivery:
 * - free: nothing of its entity is waiting; it goes now (admit only);
 * - head: it is first in line (hold made it so, or a replay found it there);
 * - held: it waits behind an earlier delivery of its entity;
 * - present: it already waits in line (a replay);
 * - full: the line is at ORDERING_MAX_HELD; it was not added.
 */
export type OrderStatus = 'free' | 'head' | 'held' | 'present' | 'full';

export interface LineState {
  status: OrderStatus;
  /** The first in line when its retry record may not have been written (see EntityOrder): its stored record. */
  undriven: string | null;
}

/** The digest that stands for an entity: the Kafka key's bytes may be anything, of any length. */
export function entityOf(key: Buffer | null): string | null {
  return key === null || key.length === 0 ? null : createHash('sha256').update(key).digest('base64url').slice(0, 22);
}

// Each line is a list of delivery ids (KEYS[1]) and a hash (KEYS[2]) of id -> stored retry
// record, plus the field "" naming the retry record that drives the first in line: its own, once
// written, or that of the one before it, which releases it and goes on with it in process.
const UNDRIVEN = `
local function undriven(q, r)
  local head = redis.call('LINDEX', q, 0)
  if head and not redis.call('HGET', r, '') then return redis.call('HGET', r, head) end
  return false
end
`;

// ARGV: mode ("admit": an empty line means go now; "hold": an empty line takes it as first), id, record, max.
const ENTER = `${UNDRIVEN}
local q, r = KEYS[1], KEYS[2]
local mode, id, rec, max = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local n = redis.call('LLEN', q)
local status
if n == 0 then
  if mode == 'admit' then return {'free', false} end
  redis.call('RPUSH', q, id)
  redis.call('HSET', r, id, rec)
  status = 'head'
elseif redis.call('LINDEX', q, 0) == id then
  if mode == 'hold' then redis.call('HSET', r, id, rec) end
  status = 'head'
elseif redis.call('LPOS', q, id) then
  status = 'present'
elseif n >= max then
  status = 'full'
else
  redis.call('RPUSH', q, id)
  redis.call('HSET', r, id, rec)
  status = 'held'
end
return {status, undriven(q, r)}
`;

// The retry record of ARGV[1] is about to run: is it first in line ('head', and it drives it now)?
// Or does it drive the first (it released its own delivery and was interrupted going on)?
const TURN = `${UNDRIVEN}
local q, r, id = KEYS[1], KEYS[2], ARGV[1]
local head = redis.call('LINDEX', q, 0)
if head == id then
  redis.call('HSET', r, '', id)
  return {'head', false}
end
if head and redis.call('HGET', r, '') == id then return {'drives', redis.call('HGET', r, head)} end
return {'stale', undriven(q, r)}
`;

// ARGV[1] has ended: if first in line, the next one is first now, driven by the retry record of
// ARGV[2] (which goes on with it), or by none yet when ARGV[2] is empty.
const RELEASE = `
local q, r, id, driver = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
if redis.call('LINDEX', q, 0) ~= id then return false end
redis.call('LPOP', q)
redis.call('HDEL', r, id)
local nxt = redis.call('LINDEX', q, 0)
if not nxt then
  redis.call('DEL', q, r)
  return false
end
if driver == '' then redis.call('HDEL', r, '') else redis.call('HSET', r, '', driver) end
return redis.call('HGET', r, nxt)
`;

const MARK_DRIVEN = `
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then redis.call('HSET', KEYS[2], '', ARGV[1]) end
`;

/**
 * What a retry record of a line may do: attempt its own delivery (head), go on with the first in
 * line, whose stored record comes with it (drives), or nothing (stale: its turn is over).
 */
export type Turn = { role: 'head' } | { role: 'drives'; record: string } | { role: 'stale' };

type OrderRedis = RedisClient & {
  orderEnter(
    q: string,
    r: string,
    mode: 'admit' | 'hold',
    id: string,
    rec: string,
    max: number,
  ): Promise<[OrderStatus, string | null]>;
  orderTurn(q: string, r: string, id: string): Promise<['head' | 'drives' | 'stale', string | null]>;
  orderRelease(q: string, r: string, id: string, driver: string): Promise<string | null>;
  orderMarkDriven(q: string, r: string, id: string): Promise<void>;
};

/**
 * The lines of deliveries waiting for their turn, per (webhook, entity), kept in Redis so that
 * they survive restarts and move with partitions between replicas (docs/design.md#ordering).
 *
 * Why a line, and why "drivers": a delivery that fails holds the later ones of its entity, and it
 * is retried through the Kafka retry path like any other. Only the first in line is driven by a
 * retry record; the others are stored whole in Redis and have none. When the first ends
 * (delivered, or FAILED), its retry record releases it and goes on with the next one in process,
 * still unfinished on its topic (so a crash reads it again and it goes on where it was), until one
 * fails (that one gets a retry record of its own and drives the line from then on) or a budget of
 * steps is spent (the next one is given a retry record due at once).
 *
 * Every step is one atomic script, and a step that a crash interrupts is found by whoever looks
 * next: a first in line with no driver at all ("undriven": it failed, and its retry record was
 * not written yet) is given one by the next admit, hold or turn that sees it. A driver written
 * twice is harmless: only the first in line is attempted, so the copy finds its turn over
 * ("stale") and does nothing. So the order of first deliveries holds through crashes; a delivery
 * may still be repeated (at least once).
 */
export class EntityOrder {
  private readonly redis: OrderRedis;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    /** Deliveries one line may hold (ORDERING_MAX_HELD). */
    private readonly maxHeld: number,
  ) {
    this.redis = withScripts<OrderRedis>(redis, {
      orderEnter: { numberOfKeys: 2, lua: ENTER },
      orderTurn: { numberOfKeys: 2, lua: TURN },
      orderRelease: { numberOfKeys: 2, lua: RELEASE },
      orderMarkDriven: { numberOfKeys: 2, lua: MARK_DRIVEN },
    });
  }

  /** A new delivery: free to go, or added to its line (`record` is what will be sent when its turn comes). */
  admit(key: OrderKey, deliveryId: string, record: string): Promise<LineState> {
    return this.enter(key, 'admit', deliveryId, record);
  }

  /** A delivery that failed and will be retried: first in line (then its driver must be written), or behind. */
  hold(key: OrderKey, deliveryId: string, record: string): Promise<LineState> {
    return this.enter(key, 'hold', deliveryId, record);
  }

  /** What the retry record of `deliveryId` may do now; a stale one may also find an undriven line to repair. */
  async turn(key: OrderKey, deliveryId: string): Promise<{ turn: Turn; undriven: string | null }> {
    const [q, r] = this.keys(key);
    const [role, other] = await this.call('checking a delivery turn', () => this.redis.orderTurn(q, r, deliveryId));
    if (role === 'drives') return { turn: { role, record: other! }, undriven: null };
    return { turn: { role }, undriven: role === 'stale' ? other : null };
  }

  /**
   * Ends the turn of `deliveryId`; returns the stored record of the next in line, now driven by
   * the retry record of `driverId` (which goes on with it), or undriven when `driverId` is null.
   */
  release(key: OrderKey, deliveryId: string, driverId: string | null): Promise<string | null> {
    const [q, r] = this.keys(key);
    return this.call('releasing an entity', () => this.redis.orderRelease(q, r, deliveryId, driverId ?? ''));
  }

  /** Notes that the driver of the first in line is durable. */
  markDriven(key: OrderKey, deliveryId: string): Promise<void> {
    const [q, r] = this.keys(key);
    return this.call('marking a driver written', () => this.redis.orderMarkDriven(q, r, deliveryId));
  }

  private async enter(key: OrderKey, mode: 'admit' | 'hold', deliveryId: string, record: string): Promise<LineState> {
    const [q, r] = this.keys(key);
    const [status, undriven] = await this.call('queueing a delivery', () =>
      this.redis.orderEnter(q, r, mode, deliveryId, record, this.maxHeld),
    );
    return { status, undriven };
  }

  /** Both keys of a line share a hash tag, so a Redis Cluster keeps them on one node. */
  private keys(key: OrderKey): [string, string] {
    const tag = `${this.prefix}order:{${key.webhookId}\n${key.entity}}`;
    return [`${tag}:q`, `${tag}:r`];
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw redisError(what, err);
    }
  }
}
