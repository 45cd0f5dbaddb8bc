import { isUtf8 } from 'node:buffer';
import { BlueWebhooksError, jsonParseProblem } from '../shared/index.js';
import { isJsonObject, type Json, type JsonObject } from './json.js';
import { isConfluentFramed, type Registry } from './registry.js';

/** Where an event was read from Kafka. */
export interface EventSource {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export interface EntityRef {
  readonly id: string;
}

/** A Blue domain change event, normalised from either wire form. */
export interface BlueEvent {
  readonly id: string;
  readonly event: string;
  readonly occurredAt: string;
  readonly occurredAtMs: number;
  readonly company: EntityRef;
  readonly project: EntityRef;
  readonly user: EntityRef | null;
  readonly currentValue: JsonObject | null;
  readonly previousValue: JsonObject | null;
}

/** Limits on what an event may hold, so that one record cannot cost the pipeline unboundedly. */
export const EVENT_LIMITS = Object.freeze({
  /** The event type travels in the X-Blue-Event header: letters, digits, _ . : - only. */
  maxEventTypeLength: 128,
  /** Ids (event, company, project, user) become lookup keys. */
  maxIdLength: 256,
  /**
   * Nesting of currentValue and previousValue. Blue's records nest 4 or 5 levels; serialising a
   * value nested thousands deep overflows the stack after the offset was taken in.
   */
  maxDepth: 64,
});

/**
 * Decodes a value from blue.events. The first byte tells the forms apart: 0 is Confluent-framed
 * Avro, '{' (after optional whitespace) is JSON. Throws a final BlueWebhooksError for bad input
 * and a retriable one when the registry cannot be reached.
 */
export async function decodeEvent(value: Buffer | null, registry: Registry): Promise<BlueEvent> {
  if (value === null || value.length === 0) throw new BlueWebhooksError('INVALID_EVENT', 'empty value');
  if (isConfluentFramed(value)) {
    const avro = (await registry.decode(value)) as Record<string, unknown>;
    return validateEvent({
      ...avro,
      currentValue: parseJsonText(avro.currentValue, 'currentValue'),
      previousValue: parseJsonText(avro.previousValue, 'previousValue'),
    });
  }
  if (firstNonSpace(value) === 0x7b /* { */) {
    // Bytes that are not UTF-8 would be read as U+FFFD and delivered changed, without a word.
    if (!isUtf8(value)) throw new BlueWebhooksError('INVALID_JSON', 'the value is not valid UTF-8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(value.toString('utf8'));
    } catch (err) {
      throw new BlueWebhooksError('INVALID_JSON', `the value is ${jsonParseProblem(err)}`);
    }
    return validateEvent(parsed);
  }
  throw new BlueWebhooksError(
    'DECODE_FAILED',
    `value is neither Confluent-framed Avro (magic byte 0) nor a JSON object (first byte 0x${value[0]!.toString(16).padStart(2, '0')})`,
  );
}

function firstNonSpace(buf: Buffer): number | undefined {
  for (let i = 0; i < buf.length && i < 64; i++) {
    const c = buf[i]!;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return c;
  }
  return undefined;
}

function parseJsonText(v: unknown, field: string): Json | undefined {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') return v as Json;
  try {
    return JSON.parse(v) as Json;
  } catch (err) {
    throw new BlueWebhooksError('INVALID_EVENT', `${field} is ${jsonParseProblem(err)} text`);
  }
}

function invalid(msg: string): never {
  throw new BlueWebhooksError('INVALID_EVENT', msg);
}

function requireString(fields: Record<string, unknown>, key: string, where = ''): string {
  const v = fields[key];
  if (typeof v !== 'string' || v.length === 0) invalid(`missing or empty required field ${where}${key}`);
  return v;
}

function requireId(fields: Record<string, unknown>, key: string, where = ''): string {
  const v = requireString(fields, key, where);
  if (v.length > EVENT_LIMITS.maxIdLength)
    invalid(`${where}${key} is longer than ${EVENT_LIMITS.maxIdLength} characters`);
  // Ids become lookup keys and the delivery id: a lone surrogate would reach Redis as U+FFFD.
  if (!v.isWellFormed()) invalid(`${where}${key} is not well-formed Unicode (a lone UTF-16 surrogate)`);
  return v;
}

/**
 * What is wrong with a record's value, if anything: nested deeper than `max`, or holding a number
 * that JSON numbers cannot carry exactly here. JSON.parse reads "1e400" as Infinity (sent on as
 * null) and an integer above 2^53 rounded ("12345678901234567890" is sent as
 * 12345678901234567000): the receiver would get a number the producer never wrote, under a valid
 * signature. Such an event goes to the DLQ instead (docs/contract.md#event-value). Without recursion:
 * the value may be nested deeper than the stack.
 */
function valueProblem(root: Json, max: number): string | null {
  // Two parallel stacks and a for-in: it runs on every event, and a tuple per node plus an
  // Object.values array per object were a visible share of what the dispatcher allocated.
  const values: Json[] = [root];
  const depths: number[] = [1];
  while (values.length > 0) {
    const v = values.pop()!;
    const depth = depths.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return `is nested deeper than ${max} levels`;
    if (Array.isArray(v)) {
      for (const child of v) {
        if (typeof child === 'number') {
          if (!isExact(child)) return INEXACT;
        } else if (child !== null && typeof child === 'object') {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    } else {
      for (const key in v) {
        const child = v[key]!;
        if (typeof child === 'number') {
          if (!isExact(child)) return INEXACT;
        } else if (child !== null && typeof child === 'object') {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return null;
}

const INEXACT = 'holds a number JSON cannot carry exactly here (an integer beyond 2^53, or past the double range)';

/**
 * Whether a parsed number is the one its producer wrote: finite, and not a whole number between
 * 2^53 (where doubles stop counting by one) and 10^21 (from where numbers are written with an
 * exponent, so a value such as 6.02e23 is a float as written, not digits lost).
 */
function isExact(n: number): boolean {
  return Number.isFinite(n) && (Number.isSafeInteger(n) || Math.abs(n) >= 1e21 || !Number.isInteger(n));
}

function ref(fields: Record<string, unknown>, key: string, required: boolean): EntityRef | null {
  const v = fields[key];
  if (v === null || v === undefined) {
    if (required) invalid(`missing required field ${key}.id`);
    return null;
  }
  if (!isJsonObject(v as Json)) invalid(`${key} must be an object with an id`);
  return { id: requireId(v as Record<string, unknown>, 'id', `${key}.`) };
}

function record(fields: Record<string, unknown>, key: string): JsonObject | null {
  const v = fields[key];
  if (v === null || v === undefined) return null;
  if (!isJsonObject(v as Json)) invalid(`${key} must be a JSON object or null`);
  const problem = valueProblem(v as Json, EVENT_LIMITS.maxDepth);
  if (problem !== null) invalid(`${key} ${problem}`);
  return v as JsonObject;
}

/** Checks the shape of a parsed event and returns it normalised. */
export function validateEvent(v: unknown): BlueEvent {
  if (!isJsonObject(v as Json)) invalid('an event must be a JSON object');
  const fields = v as Record<string, unknown>;
  const type = requireString(fields, 'event');
  if (type.length > EVENT_LIMITS.maxEventTypeLength || !/^[A-Za-z0-9_.:-]+$/.test(type)) {
    invalid(`event type must be 1-${EVENT_LIMITS.maxEventTypeLength} characters of letters, digits, _ . : -`);
  }
  const occurredAt = requireString(fields, 'occurredAt');
  const occurredAtMs = Date.parse(occurredAt);
  if (Number.isNaN(occurredAtMs)) invalid('occurredAt is not an ISO-8601 time');
  return {
    id: requireId(fields, 'id'),
    event: type,
    occurredAt,
    occurredAtMs,
    company: ref(fields, 'company', true)!,
    project: ref(fields, 'project', true)!,
    user: ref(fields, 'user', false),
    currentValue: record(fields, 'currentValue'),
    previousValue: record(fields, 'previousValue'),
  };
}

/** The Avro form of an event (for producers and tests): records travel as JSON text. */
export function eventToAvro(e: Omit<BlueEvent, 'occurredAtMs'>): Record<string, unknown> {
  return {
    id: e.id,
    event: e.event,
    occurredAt: e.occurredAt,
    company: { id: e.company.id },
    project: { id: e.project.id },
    user: e.user ? { id: e.user.id } : null,
    currentValue: e.currentValue === null ? null : JSON.stringify(e.currentValue),
    previousValue: e.previousValue === null ? null : JSON.stringify(e.previousValue),
  };
}
