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
import { isJsonObject, type Json, type JsonObject } from '../codec/index.js';
import { BlueWebhooksError } from '../shared/index.js';

export type FilterOp = 'eq' | 'neq' | 'in' | 'nin' | 'exists' | 'contains' | 'gt' | 'gte' | 'lt' | 'lte';
const OPS: ReadonlySet<string> = new Set<FilterOp>([
  'eq',
  'neq',
  'in',
  'nin',
  'exists',
  'contains',
  'gt',
  'gte',
  'lt',
  'lte',
]);
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
export const FILTER_LIMITS = Object.freeze({
  /** Conditions (path, op, value) in one filter. */
  maxConditions: 64,
  /** Every node: conditions, arrays, all, any, not. */
  maxNodes: 256,
  maxDepth: 8,
  maxPathLength: 256,
  maxListLength: 1000,
  /**
   * Values one evaluation may visit (every value a path reaches, every array element looked at).
   * A path into a 500,000-element array stops here instead of costing seconds.
   */
  maxVisits: 100_000,
});

type Segment =
  | { kind: 'name'; name: string }
  | { kind: 'index'; index: number }
  | { kind: 'match'; key: string; value: string };

/** What is left of one evaluation's budget of visits. */
interface Budget {
  left: number;
}

type Compiled = (ctx: FilterContext, budget: Budget) => boolean;

export class FilterError extends BlueWebhooksError {
  constructor(where: string, message: string) {
    super('INVALID_FILTER', `filter ${where}: ${message}`);
  }
}

/** An evaluation that would visit more than FILTER_LIMITS.maxVisits values: the filter does not match. */
export class FilterBudgetExceeded extends Error {
  constructor() {
    super(`filter evaluation visited more than ${FILTER_LIMITS.maxVisits} values`);
    this.name = 'FilterBudgetExceeded';
  }
}

function spend(budget: Budget, n = 1): void {
  budget.left -= n;
  if (budget.left < 0) throw new FilterBudgetExceeded();
}

/**
 * Validates a filter expression and compiles it into a predicate. Throws FilterError naming the
 * bad part. The predicate throws FilterBudgetExceeded when one evaluation would cost too much.
 */
export function compileFilter(expr: unknown): FilterPredicate {
  const root = compile(expr, '$', 0, { conditions: 0, nodes: 0 });
  return (ctx) => root(ctx, { left: FILTER_LIMITS.maxVisits });
}

function compile(expr: unknown, where: string, depth: number, counts: { conditions: number; nodes: number }): Compiled {
  if (depth > FILTER_LIMITS.maxDepth) throw new FilterError(where, `nested deeper than ${FILTER_LIMITS.maxDepth}`);
  if (++counts.nodes > FILTER_LIMITS.maxNodes)
    throw new FilterError(where, `more than ${FILTER_LIMITS.maxNodes} nodes`);
  if (Array.isArray(expr)) {
    if (expr.length > FILTER_LIMITS.maxNodes) throw new FilterError(where, `more than ${FILTER_LIMITS.maxNodes} nodes`);
    return all(expr.map((e, i) => compile(e, `${where}[${i}]`, depth + 1, counts)));
  }
  if (!isJsonObject(expr as Json)) throw new FilterError(where, 'expected a condition, an array, or all/any/not');
  const node = expr as JsonObject;
  const keys = Object.keys(node);
  if (Object.hasOwn(node, 'all') || Object.hasOwn(node, 'any')) {
    const k = Object.hasOwn(node, 'all') ? 'all' : 'any';
    if (keys.length !== 1 || !Array.isArray(node[k]))
      throw new FilterError(where, `"${k}" takes an array and nothing beside it`);
    const list = node[k] as Json[];
    if (list.length > FILTER_LIMITS.maxNodes) throw new FilterError(where, `more than ${FILTER_LIMITS.maxNodes} nodes`);
    const parts = list.map((e, i) => compile(e, `${where}.${k}[${i}]`, depth + 1, counts));
    return k === 'all' ? all(parts) : (ctx, budget) => parts.some((p) => p(ctx, budget));
  }
  if (Object.hasOwn(node, 'not')) {
    if (keys.length !== 1) throw new FilterError(where, '"not" takes one expression and nothing beside it');
    const inner = compile(node.not, `${where}.not`, depth + 1, counts);
    return (ctx, budget) => !inner(ctx, budget);
  }
  if (++counts.conditions > FILTER_LIMITS.maxConditions) {
    throw new FilterError(where, `more than ${FILTER_LIMITS.maxConditions} conditions`);
  }
  return compileCondition(node, where);
}

function all(parts: Compiled[]): Compiled {
  return (ctx, budget) => parts.every((p) => p(ctx, budget));
}

function compileCondition(node: JsonObject, where: string): Compiled {
  for (const k of Object.keys(node)) {
    if (k !== 'path' && k !== 'op' && k !== 'value') throw new FilterError(where, `unknown key "${k}"`);
  }
  if (typeof node.path !== 'string') throw new FilterError(where, '"path" must be a string');
  if (typeof node.op !== 'string' || !OPS.has(node.op)) {
    throw new FilterError(where, `"op" must be one of ${[...OPS].join(', ')}`);
  }
  const op = node.op as FilterOp;
  const [root, segments] = parsePath(node.path, where);
  const value = node.value;
  const isPrimitive = (v: Json | undefined) => v === null || ['string', 'number', 'boolean'].includes(typeof v);

  let test: (values: Json[], budget: Budget) => boolean;
  switch (op) {
    case 'eq':
    case 'neq': {
      if (value === undefined || !isPrimitive(value))
        throw new FilterError(where, `"${op}" needs a string, number, boolean or null value`);
      const eq = (vs: Json[], budget: Budget) => someValue(vs, budget, (v) => v === value);
      test = op === 'eq' ? eq : (vs, budget) => !eq(vs, budget);
      break;
    }
    case 'in':
    case 'nin': {
      if (!Array.isArray(value) || !value.every(isPrimitive))
        throw new FilterError(where, `"${op}" needs an array of primitives`);
      if (value.length > FILTER_LIMITS.maxListLength)
        throw new FilterError(where, `"${op}" list longer than ${FILTER_LIMITS.maxListLength}`);
      const set = new Set(value);
      const isIn = (vs: Json[], budget: Budget) => someValue(vs, budget, (v) => set.has(v));
      test = op === 'in' ? isIn : (vs, budget) => !isIn(vs, budget);
      break;
    }
    case 'exists': {
      if (value !== undefined && typeof value !== 'boolean')
        throw new FilterError(where, '"exists" takes true, false or no value');
      const want = value ?? true;
      test = (vs) => vs.some((v) => v !== null) === want;
      break;
    }
    case 'contains': {
      if (value === undefined || !isPrimitive(value))
        throw new FilterError(where, '"contains" needs a string, number, boolean or null value');
      test = (vs, budget) =>
        vs.some((v) => {
          if (Array.isArray(v)) {
            spend(budget, v.length);
            return v.includes(value);
          }
          if (typeof v !== 'string' || typeof value !== 'string') return false;
          // A search costs the length of the text searched: it counts as that many visits (64 characters each).
          spend(budget, Math.ceil(v.length / 64));
          return v.includes(value);
        });
      break;
    }
    default: {
      if (typeof value !== 'number' && typeof value !== 'string')
        throw new FilterError(where, `"${op}" needs a number or a string`);
      const cmp = COMPARE[op];
      // Numbers compare with numbers, strings with strings (ISO-8601 times order correctly as strings).
      test = (vs, budget) =>
        someValue(vs, budget, (v) => typeof v === typeof value && cmp(v as number | string, value));
    }
  }
  return (ctx, budget) => test(resolve(ctx[root as keyof FilterContext] as Json | undefined, segments, budget), budget);
}

const COMPARE: Record<'gt' | 'gte' | 'lt' | 'lte', (a: number | string, b: number | string) => boolean> = {
  gt: (a, b) => a > b,
  gte: (a, b) => a >= b,
  lt: (a, b) => a < b,
  lte: (a, b) => a <= b,
};

/** Whether some value, or some element of a value that is an array, passes; copies nothing. */
function someValue(vs: Json[], budget: Budget, pass: (v: Json) => boolean): boolean {
  for (const v of vs) {
    if (!Array.isArray(v)) {
      if (pass(v)) return true;
      continue;
    }
    spend(budget, v.length);
    for (const el of v) if (pass(el)) return true;
  }
  return false;
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

/** An object's own member (never one inherited from Object.prototype, such as "constructor"). */
function member(node: JsonObject, name: string): Json | undefined {
  return Object.hasOwn(node, name) ? node[name] : undefined;
}

/**
 * Whether an element's key holds `value` for a `[key=value]` segment: a string equal to it, or a
 * number or boolean written so. Nothing else is turned into text: an array or object never
 * matches (converting one costs its size, outside the budget), nor does a missing key
 * (`[id=undefined]`).
 */
function keyMatches(v: Json | undefined, value: string): boolean {
  if (typeof v === 'string') return v === value;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v) === value;
  return false;
}

/** Every value the path reaches from `start` (none when it leads nowhere). */
export function resolve(
  start: Json | undefined,
  segments: readonly Segment[],
  budget: Budget = { left: FILTER_LIMITS.maxVisits },
): Json[] {
  let current: Json[] = start === undefined ? [] : [start];
  for (const seg of segments) {
    const next: Json[] = [];
    for (const v of current) {
      if (seg.kind === 'name') {
        if (isJsonObject(v)) {
          const m = member(v, seg.name);
          if (m !== undefined) next.push(m);
        } else if (Array.isArray(v)) {
          spend(budget, v.length);
          for (const el of v) {
            const m = isJsonObject(el) ? member(el, seg.name) : undefined;
            if (m !== undefined) next.push(m);
          }
        }
      } else if (seg.kind === 'index') {
        if (Array.isArray(v) && seg.index < v.length) next.push(v[seg.index]!);
      } else if (Array.isArray(v)) {
        spend(budget, v.length);
        for (const el of v) if (isJsonObject(el) && keyMatches(member(el, seg.key), seg.value)) next.push(el);
      }
    }
    spend(budget, next.length);
    current = next;
  }
  return current;
}
