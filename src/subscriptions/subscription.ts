import { isUtf8 } from 'node:buffer';
import { isConfluentFramed, isJsonObject, type Json, type Registry } from '../codec/index.js';
import {
  BlueWebhooksError,
  errorMessage,
  jsonParseProblem,
  malformedStringPath,
  parseRfc3339,
} from '../shared/index.js';
import { compileFilter, type FilterPredicate } from './filter.js';

/** A webhook subscription as the table keeps it. */
export interface Subscription {
  readonly id: string;
  readonly uid: string;
  readonly name: string;
  readonly url: string;
  readonly secret: string | null;
  /** The secret before the last rotation: signatures with it are sent too, until previousSecretExpiresAt. */
  readonly previousSecret: string | null;
  /** ISO-8601; null with no previous secret. */
  readonly previousSecretExpiresAt: string | null;
  readonly status: string;
  readonly enabled: boolean;
  readonly metadata: { readonly events: readonly string[]; readonly projectIds: readonly string[] };
  readonly companyId: string;
  readonly createdById: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly filters: Json | null;
  /** Most deliveries per second to this webhook, across all replicas; null for no limit. */
  readonly rateLimitPerSecond: number | null;
  /** "entity": deliveries of one entity (the event's Kafka key) go one at a time, in order. */
  readonly ordering: Ordering;
  /** Headers sent with every delivery, name to value, as the owner wrote them; secrets, like `secret`. */
  readonly headers: Readonly<Record<string, string>> | null;
}

/** Delivery order a webhook asks for (docs/design.md#ordering). */
export type Ordering = 'none' | 'entity';

/** A subscription ready for the hot path: filter compiled, payload part serialised once. */
export interface ActiveSubscription {
  readonly sub: Subscription;
  readonly matches: FilterPredicate | null;
  /** Its projects and events, to check each candidate the index returns against its own metadata. */
  readonly projects: ReadonlySet<string>;
  readonly events: ReadonlySet<string>;
  /** Why it can match nothing (a filter that fails today's limits), or null. */
  readonly problem: string | null;
  /** The "webhook" member of the payload, as JSON text. Never holds the secret. */
  readonly webhookJson: string;
  /** The URL, parsed once; null when it cannot be parsed (the attempt then fails as INVALID_URL). */
  readonly url: URL | null;
  /** Epoch ms until which the previous secret also signs; 0 when it does not. */
  readonly previousSecretUntil: number;
}

/**
 * Limits on one subscription record. A record over them is invalid: counted, logged and inert,
 * like any other unusable record. They bound what one record costs the table in Redis and the
 * syncer that applies it (docs/design.md#every-record-gets-an-end).
 */
export const SUBSCRIPTION_LIMITS = Object.freeze({
  /** Bytes of the record's value on the topic. */
  maxRecordBytes: 256 * 1024,
  /** Entries of metadata.projectIds, and of metadata.events. */
  maxListLength: 10_000,
  /** (project, event type) pairs, each an index entry in Redis. */
  maxIndexPairs: 20_000,
  /** Characters of each id, project id and event name. */
  maxIdLength: 256,
  maxUrlLength: 4096,
  /** Characters of secret and previousSecret. */
  maxSecretLength: 1024,
  /** rateLimitPerSecond. */
  maxRatePerSecond: 100_000,
  /** How far ahead previousSecretExpiresAt may be: a rotation ends, and soon. */
  maxRotationMs: 30 * 24 * 3600 * 1000,
  /** Entries of `headers`. */
  maxHeaders: 20,
  /** Characters of `headers`, names and values together. */
  maxHeaderChars: 4096,
});

// RFC 9110: a field name is a token; a field value is visible ASCII, space, tab and obs-text, with
// neither space nor tab first or last.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/;
// Names the service sets or HTTP owns: an owner's value would forge, break or be dropped.
const REFUSED_HEADER =
  /^(?:host|content-.*|transfer-encoding|connection|keep-alive|upgrade|expect|te|trailer|proxy-.*|user-agent|traceparent|tracestate|webhook-.*|x-blue-.*)$/i;

/**
 * `headers`: null, or an object of name to value within the limits. A refusal names the header,
 * never its value (values are credentials). Names are compared without case: two spellings of one
 * name would send it twice.
 */
function customHeaders(fields: Record<string, unknown>): Record<string, string> | null {
  const v = fields.headers ?? null;
  if (v === null) return null;
  const fail = (msg: string): never => {
    throw new BlueWebhooksError('INVALID_HEADER', msg);
  };
  if (!isJsonObject(v as Json)) fail('headers must be an object of name to value, or null');
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > SUBSCRIPTION_LIMITS.maxHeaders)
    fail(`headers has ${entries.length} entries; at most ${SUBSCRIPTION_LIMITS.maxHeaders}`);
  const seen = new Set<string>();
  let chars = 0;
  for (const [name, value] of entries) {
    if (!TOKEN.test(name)) fail(`headers: ${JSON.stringify(name.slice(0, 64))} is not a header name (RFC 9110 token)`);
    if (REFUSED_HEADER.test(name)) fail(`headers: ${name} is set by the service or by HTTP, not by a subscription`);
    if (seen.has(name.toLowerCase())) fail(`headers: ${name} is named twice`);
    seen.add(name.toLowerCase());
    if (typeof value !== 'string') fail(`headers: the value of ${name} must be a string`);
    if (!FIELD_VALUE.test(value as string))
      fail(`headers: the value of ${name} has a character a header cannot carry, or space at an end`);
    chars += name.length + (value as string).length;
  }
  if (chars > SUBSCRIPTION_LIMITS.maxHeaderChars)
    fail(`headers has ${chars} characters; at most ${SUBSCRIPTION_LIMITS.maxHeaderChars}`);
  return v as Record<string, string>;
}

function invalid(msg: string): never {
  throw new BlueWebhooksError('INVALID_SUBSCRIPTION', msg);
}

function str(
  fields: Record<string, unknown>,
  key: string,
  maxLength: number = SUBSCRIPTION_LIMITS.maxIdLength,
): string {
  const v = fields[key];
  if (typeof v !== 'string' || v.length === 0) invalid(`missing or empty required field ${key}`);
  if (v.length > maxLength) invalid(`${key} is longer than ${maxLength} characters`);
  return v;
}

function strList(fields: Record<string, unknown>, key: string): string[] {
  const v = fields[key];
  const max = SUBSCRIPTION_LIMITS.maxIdLength;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length > 0 && x.length <= max)) {
    invalid(`metadata.${key} must be an array of strings of 1-${max} characters`);
  }
  if (v.length > SUBSCRIPTION_LIMITS.maxListLength)
    invalid(`metadata.${key} has more than ${SUBSCRIPTION_LIMITS.maxListLength} entries`);
  return [...new Set(v as string[])];
}

const STANDARD_SECRET = /^whsec_(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A secret field: a string, or null/absent. An empty string (Blue's example echoes "") means
 * none. A "whsec_" secret must be base64 after the prefix, since that is the key receivers decode.
 * Messages never quote the value.
 */
function optionalSecret(fields: Record<string, unknown>, key: string): string | null {
  const v = fields[key] ?? null;
  if (v !== null && typeof v !== 'string') invalid(`${key} must be a string or null`);
  if (v === null || v.length === 0) return null;
  if (v.length > SUBSCRIPTION_LIMITS.maxSecretLength)
    invalid(`${key} is longer than ${SUBSCRIPTION_LIMITS.maxSecretLength} characters`);
  if (v.startsWith('whsec_') && (v.length === 6 || !STANDARD_SECRET.test(v)))
    invalid(`${key} starts with whsec_ but the rest is not base64`);
  return v;
}

/** A time field: RFC 3339 with an offset (docs/contract.md#subscription-value), never what Date.parse guesses. */
function rfc3339(fields: Record<string, unknown>, key: string): string {
  const v = str(fields, key);
  if (parseRfc3339(v) === null) invalid(`${key} is not an RFC 3339 time with an offset (2026-01-31T12:00:00Z)`);
  return v;
}

/** Every string of the record, keys included, filters included: well-formed, or the record is refused. */
function requireWellFormed(value: unknown, where: string): void {
  const at = malformedStringPath(value, where);
  if (at !== null) {
    throw new BlueWebhooksError('MALFORMED_UNICODE', `${at} is not well-formed Unicode (a lone UTF-16 surrogate)`);
  }
}

/** Webhook URLs: absolute http(s) with a host. Whether the host may be reached is the delivery's call. */
export function validateUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    invalid('url is not a valid absolute URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') invalid(`url scheme must be http or https, not ${u.protocol}`);
  if (!u.hostname) invalid('url has no host');
  try {
    // User info becomes a Basic authorization header; it must decode.
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
  } catch {
    invalid('url user info has an invalid percent-escape');
  }
  return u;
}

/**
 * Checks a parsed subscription value and returns it normalised. Throws INVALID_SUBSCRIPTION or
 * INVALID_FILTER with a message that says what is wrong (never the secret).
 */
export function validateSubscription(v: unknown, key: string | null): Subscription {
  if (!isJsonObject(v as Json)) invalid('a subscription must be a JSON object');
  requireWellFormed(v, '');
  const fields = v as Record<string, unknown>;
  const id = str(fields, 'id');
  if (key !== null && key !== id) invalid(`id "${id}" differs from the record key "${key}"`);
  const url = str(fields, 'url', SUBSCRIPTION_LIMITS.maxUrlLength);
  validateUrl(url);
  const secret = optionalSecret(fields, 'secret');
  const previousSecret = optionalSecret(fields, 'previousSecret');
  const expires = fields.previousSecretExpiresAt ?? null;
  if (expires !== null && (typeof expires !== 'string' || parseRfc3339(expires) === null)) {
    invalid('previousSecretExpiresAt must be an RFC 3339 time with an offset, or null');
  }
  if (previousSecret !== null) {
    // Both secrets sign until the rotation ends: it must end, within the limit, with two secrets.
    if (expires === null) invalid('previousSecret needs previousSecretExpiresAt (when the rotation ends)');
    if (parseRfc3339(expires as string)! - Date.now() > SUBSCRIPTION_LIMITS.maxRotationMs)
      invalid(`previousSecretExpiresAt is more than ${SUBSCRIPTION_LIMITS.maxRotationMs / 86_400_000} days ahead`);
    if (previousSecret === secret) invalid('previousSecret is the same as secret');
  }
  if (typeof fields.enabled !== 'boolean') invalid('enabled must be true or false');
  const meta = fields.metadata;
  if (!isJsonObject(meta as Json)) invalid('missing required field metadata');
  let filters = fields.filters ?? null;
  if (typeof filters === 'string') {
    try {
      filters = JSON.parse(filters);
    } catch (err) {
      throw new BlueWebhooksError('INVALID_FILTER', `filters is ${jsonParseProblem(err)} text`);
    }
    requireWellFormed(filters, 'filters');
  }
  if (filters !== null) compileFilter(filters); // validate now; compiled again when activated
  const status = fields.status ?? 'HEALTHY';
  if (status !== 'HEALTHY' && status !== 'UNHEALTHY') invalid('status must be HEALTHY or UNHEALTHY');
  const events = strList(meta as Record<string, unknown>, 'events');
  const projectIds = strList(meta as Record<string, unknown>, 'projectIds');
  if (events.length * projectIds.length > SUBSCRIPTION_LIMITS.maxIndexPairs) {
    invalid(
      `metadata has ${events.length * projectIds.length} (project, event) pairs; at most ${SUBSCRIPTION_LIMITS.maxIndexPairs}`,
    );
  }
  const rate = fields.rateLimitPerSecond ?? null;
  if (
    rate !== null &&
    !(Number.isSafeInteger(rate) && (rate as number) >= 1 && (rate as number) <= SUBSCRIPTION_LIMITS.maxRatePerSecond)
  ) {
    invalid(`rateLimitPerSecond must be an integer from 1 to ${SUBSCRIPTION_LIMITS.maxRatePerSecond}, or null`);
  }
  const ordering = fields.ordering ?? 'none';
  if (ordering !== 'none' && ordering !== 'entity') invalid('ordering must be "none", "entity" or null');
  const headers = customHeaders(fields);
  return {
    id,
    uid: str(fields, 'uid'),
    name: str(fields, 'name'),
    url,
    secret,
    previousSecret,
    previousSecretExpiresAt: previousSecret === null ? null : (expires as string | null),
    status,
    enabled: fields.enabled,
    metadata: { events, projectIds },
    companyId: str(fields, 'companyId'),
    createdById: str(fields, 'createdById'),
    createdAt: rfc3339(fields, 'createdAt'),
    updatedAt: rfc3339(fields, 'updatedAt'),
    filters: filters as Json | null,
    rateLimitPerSecond: rate as number | null,
    ordering,
    headers,
  };
}

/** Decodes a value from the subscriptions topic (Avro with Confluent framing, or JSON). */
export async function decodeSubscription(value: Buffer, key: string | null, registry: Registry): Promise<Subscription> {
  if (value.length > SUBSCRIPTION_LIMITS.maxRecordBytes)
    invalid(`record of ${value.length} bytes; at most ${SUBSCRIPTION_LIMITS.maxRecordBytes}`);
  let parsed: unknown;
  if (isConfluentFramed(value)) {
    parsed = { ...((await registry.decode(value)) as object) };
  } else {
    // Bytes that are not UTF-8 would become U+FFFD, silently: two different values, one string.
    if (!isUtf8(value)) throw new BlueWebhooksError('MALFORMED_UNICODE', 'the value is not valid UTF-8');
    try {
      parsed = JSON.parse(value.toString('utf8'));
    } catch (err) {
      throw new BlueWebhooksError('INVALID_SUBSCRIPTION', `the value is ${jsonParseProblem(err)}`);
    }
  }
  return validateSubscription(parsed, key);
}

/** The Avro form of a subscription (filters travel as JSON text). */
export function subscriptionToAvro(s: Subscription): Record<string, unknown> {
  return { ...s, metadata: { ...s.metadata }, filters: s.filters === null ? null : JSON.stringify(s.filters) };
}

/**
 * The URL as a payload shows it: without user info, query or fragment, where credentials travel
 * (`https://user:pw@h/?token=…`). Any other URL is shown as written.
 */
export function publicUrl(raw: string): string {
  const u = URL.parse(raw);
  if (u === null || (!u.username && !u.password && !u.search && !u.hash)) return raw;
  u.username = '';
  u.password = '';
  u.search = '';
  u.hash = '';
  return u.href;
}

/** The subscription as Blue shows it in payloads: never the secret, nor a credential in its URL. */
export function publicView(s: Subscription): Record<string, unknown> {
  return {
    id: s.id,
    uid: s.uid,
    name: s.name,
    url: publicUrl(s.url),
    status: s.status,
    enabled: s.enabled,
    metadata: { events: s.metadata.events, projectIds: s.metadata.projectIds },
    createdById: s.createdById,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}

const NEVER: FilterPredicate = () => false;

/**
 * Prepares a stored subscription for the hot path. Never throws: a filter that today's limits
 * refuse (stored by an older version) makes the subscription match nothing, and says why.
 */
export function activate(sub: Subscription): ActiveSubscription {
  let matches: FilterPredicate | null = null;
  let problem: string | null = null;
  if (sub.filters !== null) {
    try {
      matches = compileFilter(sub.filters);
    } catch (err) {
      matches = NEVER;
      problem = errorMessage(err);
    }
  }
  return {
    sub,
    matches,
    projects: new Set(sub.metadata.projectIds),
    events: new Set(sub.metadata.events),
    problem,
    webhookJson: JSON.stringify(publicView(sub)),
    url: URL.canParse(sub.url) ? new URL(sub.url) : null,
    previousSecretUntil:
      sub.previousSecret !== null && sub.previousSecretExpiresAt !== null
        ? (parseRfc3339(sub.previousSecretExpiresAt) ?? 0)
        : 0,
  };
}
