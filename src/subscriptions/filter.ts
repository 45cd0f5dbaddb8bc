// A small declarative filter language over JSON paths into an event.
//
//   expr      := condition | expr[] (all of them) | {"all": expr[]} | {"any": expr[]} | {"not": expr}
//   condition := {"path": "<root>.<seg>...", "op": OP, "value"?: JSON}
//   OP        := eq | neq | in | nin | exists | contains | gt | gte | lt | lte
//   root      := event | currentValue | previousValue | company | project | user
//   seg       := name | name[3] | name[key=value]
//
// A path can reach several values: stepping into an array by name visits every element
// ("currentValue.tags.id" is every tag's id), and [key=value] keeps the elements whose key
// equals value ("currentValue.customFields[id=cf_1].value"). A condition holds when some
// reached value satisfies it; neq and nin are the negations of eq and in.
import { isJsonObject, type Json, type JsonObject } from '../codec/json.js';
import { BlueWebhooksError } from '../shared/errors.js';

export type FilterOp = 'eq' | 'neq' | 'in' | 'nin' | 'exists' | 'contains' | 'gt' | 'gte' | 'lt' | 'lte';
const OPS: ReadonlySet<string> = new Set<FilterOp>(['eq', 'neq', 'in', 'nin', 'exists', 'contains', 'gt', 'gte', 'lt', 'lte']);
const ROOTS: ReadonlySet<string> = new Set(['event', 'currentValue', 'previousValue', 'company', 'project', 'user']);

/** What filters see: the event in Blue's payload shape. */
export interface FilterContext {
  readonly event: string;
  readonly currentValue: JsonObject | null;
  readonly previousValue: JsonObject | null;
  readonly company: JsonObject | { id: string };
  readonly project: JsonObject | { id: string };
  readonly user: JsonObject | { id: string } | null;
}

export type FilterPredicate = (ctx: FilterContext) => boolean;

/** Limits that keep one subscription's filter from costing much on the hot path. */
export const FILTER_LIMITS = Object.freeze({ maxConditions: 64, maxDepth: 8, maxPathLength: 256, maxListLength: 1000 });

type Segment = { kind: 'name'; name: string } | { kind: 'index'; index: number } | { kind: 'match'; key: string; value: string };

export class FilterError extends BlueWebhooksError {
  constructor(where: string, message: string) {
    super('INVALID_FILTER', `filter ${where}: ${message}`);
  }
}

/** Validates a filter expression and compiles it into a predicate. Throws FilterError naming the bad part. */
export function compileFilter(expr: unknown): FilterPredicate {
  const budget = { conditions: 0 };
  return compile(expr, '$', 0, budget);
}

function compile(expr: unknown, where: string, depth: number, budget: { conditions: number }): FilterPredicate {
  if (depth > FILTER_LIMITS.maxDepth) throw new FilterError(where, `nested deeper than ${FILTER_LIMITS.maxDepth}`);
  if (Array.isArray(expr)) return all(expr.map((e, i) => compile(e, `${where}[${i}]`, depth + 1, budget)));
  if (!isJsonObject(expr as Json)) throw new FilterError(where, 'expected a condition, an array, or all/any/not');
  const o = expr as JsonObject;
  const keys = Object.keys(o);
  if ('all' in o || 'any' in o) {
    const k = 'all' in o ? 'all' : 'any';
    if (keys.length !== 1 || !Array.isArray(o[k])) throw new FilterError(where, `"${k}" takes an array and nothing beside it`);
    const parts = (o[k] as Json[]).map((e, i) => compile(e, `${where}.${k}[${i}]`, depth + 1, budget));
    return k === 'all' ? all(parts) : (ctx) => parts.some((p) => p(ctx));
  }
  if ('not' in o) {
    if (keys.length !== 1) throw new FilterError(where, '"not" takes one expression and nothing beside it');
    const inner = compile(o.not, `${where}.not`, depth + 1, budget);
    return (ctx) => !inner(ctx);
  }
  if (++budget.conditions > FILTER_LIMITS.maxConditions) {
    throw new FilterError(where, `more than ${FILTER_LIMITS.maxConditions} conditions`);
  }
  return compileCondition(o, where);
}

function all(parts: FilterPredicate[]): FilterPredicate {
  return (ctx) => parts.every((p) => p(ctx));
}

function compileCondition(o: JsonObject, where: string): FilterPredicate {
  for (const k of Object.keys(o)) {
    if (k !== 'path' && k !== 'op' && k !== 'value') throw new FilterError(where, `unknown key "${k}"`);
  }
  if (typeof o.path !== 'string') throw new FilterError(where, '"path" must be a string');
  if (typeof o.op !== 'string' || !OPS.has(o.op)) {
    throw new FilterError(where, `"op" must be one of ${[...OPS].join(', ')}`);
  }
  const op = o.op as FilterOp;
  const [root, segments] = parsePath(o.path, where);
  const value = o.value;
  const isPrimitive = (v: Json | undefined) => v === null || ['string', 'number', 'boolean'].includes(typeof v);

  let test: (values: Json[]) => boolean;
  switch (op) {
    case 'eq':
    case 'neq': {
      if (value === undefined || !isPrimitive(value)) throw new FilterError(where, `"${op}" needs a string, number, boolean or null value`);
      const eq = (vs: Json[]) => flat(vs).some((v) => v === value);
      test = op === 'eq' ? eq : (vs) => !eq(vs);
      break;
    }
    case 'in':
    case 'nin': {
      if (!Array.isArray(value) || !value.every(isPrimitive)) throw new FilterError(where, `"${op}" needs an array of primitives`);
      if (value.length > FILTER_LIMITS.maxListLength) throw new FilterError(where, `"${op}" list longer than ${FILTER_LIMITS.maxListLength}`);
      const set = new Set(value);
      const isIn = (vs: Json[]) => flat(vs).some((v) => set.has(v));
      test = op === 'in' ? isIn : (vs) => !isIn(vs);
      break;
    }
    case 'exists': {
      if (value !== undefined && typeof value !== 'boolean') throw new FilterError(where, '"exists" takes true, false or no value');
      const want = value ?? true;
      test = (vs) => vs.some((v) => v !== null) === want;
      break;
    }
    case 'contains': {
      if (value === undefined || !isPrimitive(value)) throw new FilterError(where, '"contains" needs a string, number, boolean or null value');
      test = (vs) =>
        vs.some((v) =>
          Array.isArray(v) ? v.includes(value) : typeof v === 'string' && typeof value === 'string' && v.includes(value),
        );
      break;
    }
    default: {
      if (typeof value !== 'number' && typeof value !== 'string') throw new FilterError(where, `"${op}" needs a number or a string`);
      const cmp = COMPARE[op];
      // Numbers compare with numbers, strings with strings (ISO-8601 times order correctly as strings).
      test = (vs) => flat(vs).some((v) => typeof v === typeof value && cmp(v as number | string, value));
    }
  }
  return (ctx) => test(resolve(ctx[root as keyof FilterContext] as Json | undefined, segments));
}

const COMPARE: Record<'gt' | 'gte' | 'lt' | 'lte', (a: number | string, b: number | string) => boolean> = {
  gt: (a, b) => a > b,
  gte: (a, b) => a >= b,
  lt: (a, b) => a < b,
  lte: (a, b) => a <= b,
};

function flat(vs: Json[]): Json[] {
  return vs.some(Array.isArray) ? vs.flat() : vs;
}

const SEGMENT = /^([A-Za-z0-9_$-]+)(?:\[(?:(\d+)|([A-Za-z0-9_$-]+)=([^\]]*))\])?$/;

function parsePath(path: string, where: string): [string, Segment[]] {
  if (path.length === 0 || path.length > FILTER_LIMITS.maxPathLength) {
    throw new FilterError(where, `"path" must be 1-${FILTER_LIMITS.maxPathLength} characters`);
  }
  const parts = path.split('.');
  const root = parts[0]!;
  if (!ROOTS.has(root)) throw new FilterError(where, `path must start with one of ${[...ROOTS].join(', ')}`);
  const segments: Segment[] = [];
  for (const part of parts.slice(1)) {
    const m = SEGMENT.exec(part);
    if (!m) throw new FilterError(where, `bad path segment "${part}"`);
    segments.push({ kind: 'name', name: m[1]! });
    if (m[2] !== undefined) segments.push({ kind: 'index', index: Number(m[2]) });
    else if (m[3] !== undefined) segments.push({ kind: 'match', key: m[3], value: m[4]! });
  }
  return [root, segments];
}

/** Every value the path reaches from `start` (none when it leads nowhere). */
export function resolve(start: Json | undefined, segments: readonly Segment[]): Json[] {
  let current: Json[] = start === undefined ? [] : [start];
  for (const seg of segments) {
    const next: Json[] = [];
    for (const v of current) {
      if (seg.kind === 'name') {
        if (isJsonObject(v)) {
          if (v[seg.name] !== undefined) next.push(v[seg.name]!);
        } else if (Array.isArray(v)) {
          for (const el of v) if (isJsonObject(el) && el[seg.name] !== undefined) next.push(el[seg.name]!);
        }
      } else if (seg.kind === 'index') {
        if (Array.isArray(v) && seg.index < v.length) next.push(v[seg.index]!);
      } else if (Array.isArray(v)) {
        for (const el of v) if (isJsonObject(el) && String(el[seg.key]) === seg.value) next.push(el);
      }
    }
    current = next;
  }
  return current;
}
