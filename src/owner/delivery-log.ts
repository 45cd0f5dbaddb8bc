// The delivery log: each webhook's most recent attempts, in Redis, for its owner to read.
//
// Why a stream per webhook, and a key per delivery naming its webhook. The owner's two questions
// are "what happened to my webhook lately" (newest first, a page at a time) and "what happened to
// this delivery" (every attempt). A stream answers the first in one XREVRANGE from a cursor, and is
// bounded by count (MAXLEN) and by age (MINID) as it is written. A delivery's attempts are in its
// webhook's stream already, among at most DELIVERY_LOG_MAX_PER_WEBHOOK entries: the delivery's key
// only says which webhook (a plain SET, the cheapest write), so an attempt costs its bytes once.
// Keys sit in the REDIS_BUCKETS hash tags, by webhook id and by delivery id, so they spread over a
// Redis Cluster's masters; a batch is written with one script call a bucket.
import type { EventSource } from '../codec/index.js';
import { RESPONSE_SNIPPET_BYTES } from '../delivery/index.js';
import type { WebhookResult } from '../results/index.js';
import { bucketOf, bucketPrefix, type RedisClient, redisError, runScript, withScripts } from '../shared/index.js';

/** One attempt as the owner sees it. */
export interface LoggedAttempt {
  deliveryId: string;
  eventId: string;
  eventType: string;
  attempt: number;
  state: string;
  reason: string | null;
  httpStatus: number | null;
  durationMs: number;
  /** RFC 3339. */
  at: string;
  nextAttemptAt: string | null;
  error: { code: string; message: string } | null;
  /** The start of the endpoint's answer, redacted, valid UTF-8. */
  responseSnippet: string | null;
}

export interface DeliveryLogOptions {
  /** DELIVERY_LOG_MAX_PER_WEBHOOK. */
  maxPerWebhook: number;
  /** DELIVERY_LOG_RETENTION, in ms. */
  retentionMs: number;
}

/** An attempt as the log keeps it: what the owner sees, and where its event was read. */
type StoredAttempt = LoggedAttempt & { source: EventSource | null };

/** What a resend needs of a delivery: its webhook, its last attempt, and where its event is. */
export interface DeliveryOrigin {
  webhookId: string;
  lastAttempt: number;
  source: EventSource | null;
}

/** A page of a webhook's attempts, newest first; `nextCursor` reads on, null at the end. */
export interface AttemptPage {
  data: LoggedAttempt[];
  nextCursor: string | null;
}

// Logs one bucket's share of a batch in one call: appends attempts to its webhooks' streams, in
// order, and names the webhook of each of its deliveries. One call a bucket, not two commands an
// attempt: a client spends its CPU on commands, not on bytes (`npm run bench:log`).
// An entry id's time is the result's, so that age is the attempt's age however late it is logged;
// a result timed before its stream's last entry (another replica's clock) takes that entry's time.
// Times stay strings: Lua's numbers print as 1.7e+12. Each write is a pcall, so that a key Redis
// refuses (a wrong type) ends only its own attempt; the answer is, per key, 0 or Redis's error.
// KEYS: the bucket's streams and delivery keys. ARGV: max entries, oldest id kept, retention ms,
// then three a key: 'a', the entry's JSON and its time (ms) for a stream; 's', the webhook id and ''
// for a delivery.
const APPEND = `
local answers, lastMs, touched = {}, {}, {}
local function failed(reply) return type(reply) == 'table' and reply.err end
for i, key in ipairs(KEYS) do
  local kind, value, ms = ARGV[3 * i + 1], ARGV[3 * i + 2], ARGV[3 * i + 3]
  local err = nil
  if kind == 's' then
    err = failed(redis.pcall('SET', key, value, 'PX', ARGV[3]))
  else
    if lastMs[key] == nil then
      local last = redis.pcall('XREVRANGE', key, '+', '-', 'COUNT', 1)
      err = failed(last)
      if not err then lastMs[key] = last[1] and string.match(last[1][1], '^(%d+)') or '0' end
    end
    if not err then
      if tonumber(lastMs[key]) > tonumber(ms) then ms = lastMs[key] end
      err = failed(redis.pcall('XADD', key, 'MAXLEN', ARGV[1], ms .. '-*', 'a', value))
      if not err then
        lastMs[key] = ms
        touched[key] = true
      end
    end
  end
  answers[i] = err or 0
end
for key in pairs(touched) do
  redis.pcall('XTRIM', key, 'MINID', ARGV[2])
  redis.pcall('PEXPIRE', key, ARGV[3])
end
return answers`;

/** An attempt Redis refused to log, and why. */
export interface RefusedAttempt {
  result: WebhookResult;
  message: string;
}

/** What a stream entry id looks like (the cursor's shape too). */
export const STREAM_ID = /^\d{1,15}-\d{1,10}$/;

export class DeliveryLog {
  private readonly redis: RedisClient;

  constructor(
    redis: RedisClient,
    private readonly keyPrefix: string,
    private readonly options: DeliveryLogOptions,
  ) {
    this.redis = withScripts(redis, { dlogAppend: { lua: APPEND } });
  }

  private key(bucket: number, kind: 'w' | 'd', id: string): string {
    return `${bucketPrefix(this.keyPrefix, bucket)}dlog:${kind}:${id}`;
  }

  private webhookKey(webhookId: string): string {
    return this.key(bucketOf(webhookId), 'w', webhookId);
  }

  /** Whether a result is too old to keep (past DELIVERY_LOG_RETENTION). */
  expired(r: WebhookResult): boolean {
    return r.timestamp < Date.now() - this.options.retentionMs;
  }

  /**
   * Logs outcomes, in their order, and answers those Redis refused (a key of the wrong type, say).
   * Throws a retriable BlueWebhooksError (REDIS_UNAVAILABLE) when waiting for Redis can help.
   */
  async append(results: readonly WebhookResult[]): Promise<RefusedAttempt[]> {
    const { maxPerWebhook, retentionMs } = this.options;
    const groups = new Map<number, { keys: string[]; args: (string | number)[]; owners: number[] }>();
    const add = (bucket: number, key: string, owner: number, ...args: (string | number)[]) => {
      let group = groups.get(bucket);
      if (group === undefined) {
        group = { keys: [], args: [], owners: [] };
        groups.set(bucket, group);
      }
      group.keys.push(key);
      group.args.push(...args);
      group.owners.push(owner);
    };
    results.forEach((r, i) => {
      const home = bucketOf(r.webhookId);
      add(home, this.key(home, 'w', r.webhookId), i, 'a', entryJson(r), r.timestamp);
      const bucket = bucketOf(r.deliveryId);
      add(bucket, this.key(bucket, 'd', r.deliveryId), i, 's', r.webhookId, '');
    });
    const minId = `${Math.max(0, Date.now() - retentionMs)}-0`;
    const refused = new Map<number, string>();
    try {
      // Sent at once; one webhook's attempts are all in its bucket's call, in order.
      const answers = await Promise.all(
        [...groups.values()].map((g) =>
          runScript<(0 | string)[]>(this.redis, 'dlogAppend', g.keys, [maxPerWebhook, minId, retentionMs, ...g.args]),
        ),
      );
      [...groups.values()].forEach((g, n) => {
        answers[n]!.forEach((answer, k) => {
          if (answer !== 0 && !refused.has(g.owners[k]!)) refused.set(g.owners[k]!, answer);
        });
      });
    } catch (err) {
      throw redisError('logging attempts', err);
    }
    return [...refused].map(([i, message]) => {
      // A refusal waiting can end (OOM, a fail-over) retries the batch, as a refused call would.
      const kind = redisError('logging an attempt', Object.assign(new Error(message), { name: 'ReplyError' }));
      if (kind.retriable) throw kind;
      return { result: results[i]!, message };
    });
  }

  /** A webhook's attempts, newest first, after `cursor` (an entry id), optionally of one state. */
  async attempts(
    webhookId: string,
    query: { limit: number; cursor: string | null; state: string | null },
  ): Promise<AttemptPage> {
    const key = this.webhookKey(webhookId);
    const oldest = Date.now() - this.options.retentionMs;
    const page: AttemptPage = { data: [], nextCursor: null };
    let lastId = '';
    let from = query.cursor === null ? '+' : `(${query.cursor}`;
    for (;;) {
      const batch = await this.redis.xrevrange(key, from, '-', 'COUNT', Math.max(query.limit, 100)).catch((err) => {
        throw redisError('reading attempts', err);
      });
      for (const [id, fields] of batch) {
        if (Number(id.split('-')[0]) < oldest) return page;
        const attempt = parseEntry(fields);
        if (attempt === null || (query.state !== null && attempt.state !== query.state)) continue;
        if (page.data.length === query.limit) {
          page.nextCursor = lastId;
          return page;
        }
        const { source: _, ...shown } = attempt;
        page.data.push(shown);
        lastId = id;
      }
      if (batch.length === 0) return page;
      from = `(${batch[batch.length - 1]![0]}`;
    }
  }

  /** Every attempt of one delivery still in the log, oldest first, with its webhook; empty when none is. */
  async delivery(deliveryId: string): Promise<(LoggedAttempt & { webhookId: string })[]> {
    const found = await this.stored(deliveryId);
    return found === null
      ? []
      : found.attempts.map(({ source: _, ...shown }) => ({ webhookId: found.webhookId, ...shown }));
  }

  /** What a resend needs of a delivery, or null when none of its attempts is in the log. */
  async origin(deliveryId: string): Promise<DeliveryOrigin | null> {
    const found = await this.stored(deliveryId);
    if (found === null || found.attempts.length === 0) return null;
    return {
      webhookId: found.webhookId,
      lastAttempt: Math.max(...found.attempts.map((a) => a.attempt)),
      source: found.attempts.find((a) => a.source)?.source ?? null,
    };
  }

  private async stored(deliveryId: string): Promise<{ webhookId: string; attempts: StoredAttempt[] } | null> {
    try {
      const webhookId = await this.redis.get(this.key(bucketOf(deliveryId), 'd', deliveryId));
      if (webhookId === null) return null;
      const oldest = Date.now() - this.options.retentionMs;
      const entries = await this.redis.xrange(this.webhookKey(webhookId), `${oldest}-0`, '+');
      const attempts = entries
        .map(([, fields]) => parseEntry(fields))
        .filter((a): a is StoredAttempt => a !== null && a.deliveryId === deliveryId);
      return { webhookId, attempts };
    } catch (err) {
      throw redisError('reading a delivery', err);
    }
  }
}

/** How far ahead of this replica's clock a result may be timed (another replica's clock). */
const MAX_AHEAD_MS = 3_600_000;

/** RFC 3339 of an epoch-ms time, or null when it is none a Date can hold. */
function isoTime(ms: number | null): string | null {
  if (ms === null || !Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return null;
  return new Date(ms).toISOString();
}

/** Why a result cannot be logged as it is (a record that did not come from this service), or null. */
export function unloggable(r: WebhookResult): string | null {
  if (!Number.isSafeInteger(r.timestamp) || r.timestamp < 0 || isoTime(r.timestamp) === null)
    return 'timestamp is not a time';
  // A stream's later entries take the time of its last one: a result timed ahead of every clock
  // would date them all, and never age out.
  if (r.timestamp > Date.now() + MAX_AHEAD_MS) return 'timestamp is more than an hour ahead';
  if (r.nextAttemptAt !== null && isoTime(r.nextAttemptAt) === null) return 'nextAttemptAt is not a time';
  if (!r.webhookId || !r.deliveryId) return 'no webhook or delivery id';
  return null;
}

/** Well-formed, and at most RESPONSE_SNIPPET_BYTES of UTF-8, cut between characters: a result from elsewhere may hold more. */
function snippetOf(text: string): string {
  const wellFormed = text.toWellFormed();
  if (wellFormed.length * 3 <= RESPONSE_SNIPPET_BYTES) return wellFormed;
  const bytes = Buffer.from(wellFormed, 'utf8');
  if (bytes.length <= RESPONSE_SNIPPET_BYTES) return wellFormed;
  let cut = RESPONSE_SNIPPET_BYTES;
  while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--;
  return bytes.subarray(0, cut).toString('utf8');
}

function entryJson(r: WebhookResult): string {
  const attempt: StoredAttempt = {
    deliveryId: r.deliveryId,
    eventId: r.eventId,
    eventType: r.eventType,
    attempt: r.attempt,
    state: r.outcome,
    reason: r.reason,
    httpStatus: r.httpStatus,
    durationMs: r.durationMs,
    at: isoTime(r.timestamp)!,
    nextAttemptAt: isoTime(r.nextAttemptAt),
    error: r.error && { code: r.error.code, message: r.error.message.toWellFormed() },
    responseSnippet: r.responseSnippet === null ? null : snippetOf(r.responseSnippet),
    source: r.source,
  };
  return JSON.stringify(attempt);
}

function parseEntry(fields: string[]): StoredAttempt | null {
  const at = fields.indexOf('a');
  if (at === -1 || at + 1 >= fields.length) return null;
  try {
    return JSON.parse(fields[at + 1]!) as StoredAttempt;
  } catch {
    return null;
  }
}
