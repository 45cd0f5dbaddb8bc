import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sampleEvent } from '../../src/demo/sample-data.js';
import {
  compileFilter,
  FilterBudgetExceeded,
  type FilterContext,
  FilterError,
} from '../../src/subscriptions/filter.js';

const e = sampleEvent({
  listId: 'list_a',
  tagIds: ['tag_urgent', 'tag_ops'],
  userIds: ['u_1', 'u_2'],
  customFields: [
    { id: 'cf_priority', value: 'High' },
    { id: 'cf_points', value: 8 },
  ],
  previous: { id: 'x', todoListId: 'list_b' },
});
const ctx: FilterContext = { ...e, event: e.event };
const holds = (f: unknown) => compileFilter(f)(ctx);

describe('filter operators', () => {
  const cases: [string, unknown, boolean][] = [
    ['eq on a nested field', { path: 'currentValue.todoList.id', op: 'eq', value: 'list_a' }, true],
    ['eq mismatch', { path: 'currentValue.todoList.id', op: 'eq', value: 'list_z' }, false],
    ['neq', { path: 'currentValue.todoList.id', op: 'neq', value: 'list_z' }, true],
    ['neq on a missing field holds', { path: 'currentValue.nope', op: 'neq', value: 'x' }, true],
    ['in over array elements', { path: 'currentValue.todoTags.id', op: 'in', value: ['tag_ops', 'tag_x'] }, true],
    ['in mismatch', { path: 'currentValue.todoTags.id', op: 'in', value: ['tag_x'] }, false],
    ['nin', { path: 'currentValue.todoUsers.id', op: 'nin', value: ['u_9'] }, true],
    ['nin when one element is listed', { path: 'currentValue.todoUsers.id', op: 'nin', value: ['u_2'] }, false],
    ['exists', { path: 'previousValue.todoListId', op: 'exists' }, true],
    ['exists false on a null field', { path: 'currentValue.startedAt', op: 'exists', value: false }, true],
    ['exists on a missing field', { path: 'currentValue.missing', op: 'exists' }, false],
    ['contains in a string', { path: 'currentValue.title', op: 'contains', value: 'quarterly' }, true],
    ['contains in a string, mismatch', { path: 'currentValue.title', op: 'contains', value: 'annual' }, false],
    [
      'custom field by selector',
      { path: 'currentValue.todoCustomFields[id=cf_priority].value', op: 'eq', value: 'High' },
      true,
    ],
    ['gt on a number', { path: 'currentValue.todoCustomFields[id=cf_points].value', op: 'gt', value: 5 }, true],
    ['gte equal', { path: 'currentValue.todoCustomFields[id=cf_points].value', op: 'gte', value: 8 }, true],
    ['lt', { path: 'currentValue.todoCustomFields[id=cf_points].value', op: 'lt', value: 8 }, false],
    ['lte on ISO times as strings', { path: 'currentValue.duedAt', op: 'lte', value: '2023-01-01T00:00:00Z' }, true],
    ['gt never compares a string with a number', { path: 'currentValue.title', op: 'gt', value: 1 }, false],
    ['index segment', { path: 'currentValue.todoUsers[1].id', op: 'eq', value: 'u_2' }, true],
    ['event type root', { path: 'event', op: 'in', value: ['TODO_CREATED'] }, true],
    [
      'an array is "all"',
      [
        { path: 'event', op: 'eq', value: 'TODO_CREATED' },
        { path: 'currentValue.done', op: 'eq', value: true },
      ],
      false,
    ],
    [
      'any',
      {
        any: [
          { path: 'currentValue.done', op: 'eq', value: true },
          { path: 'project.id', op: 'exists' },
        ],
      },
      true,
    ],
    ['not', { not: { path: 'currentValue.done', op: 'eq', value: true } }, true],
  ];
  for (const [name, f, expected] of cases) test(name, () => assert.equal(holds(f), expected));
});

describe('invalid filters are refused with a message that says where', () => {
  const cases: [unknown, RegExp][] = [
    [{ path: 'currentValue.x', op: 'like', value: 1 }, /"op" must be one of/],
    [{ path: 'secret', op: 'eq', value: 1 }, /path must start with/],
    [{ path: 'currentValue..x', op: 'eq', value: 1 }, /bad path segment/],
    [{ path: 'currentValue.x', op: 'in', value: 'a' }, /needs an array/],
    [{ path: 'currentValue.x', op: 'gt', value: true }, /needs a number or a string/],
    [{ path: 'currentValue.x', op: 'eq', value: { a: 1 } }, /needs a string, number/],
    [{ path: 'currentValue.x', op: 'eq' }, /needs a string, number/],
    [{ path: 'currentValue.x', op: 'eq', value: 1, extra: 1 }, /unknown key "extra"/],
    [{ all: [{ path: 'currentValue.x', op: 'eq', value: 1 }], any: [] }, /nothing beside it/],
    [42, /expected a condition/],
    [
      {
        any: [
          { path: 'event', op: 'eq', value: 'x' },
          { path: 'nope', op: 'eq', value: 1 },
        ],
      },
      /\$\.any\[1\]/,
    ],
    [Array.from({ length: 65 }, () => ({ path: 'event', op: 'exists' })), /more than 64 conditions/],
  ];
  for (const [f, message] of cases) {
    test(JSON.stringify(f).slice(0, 70), () => {
      assert.throws(
        () => compileFilter(f),
        (err: unknown) => err instanceof FilterError && err.code === 'INVALID_FILTER' && message.test(err.message),
      );
    });
  }
});

describe('[key=value] compares strings, numbers and booleans only, within the budget', () => {
  const fields = (todoCustomFields: unknown[]) => ({ ...ctx, currentValue: { todoCustomFields } }) as FilterContext;
  const match = (key: string, value: string, elements: unknown[]) =>
    compileFilter({ path: `currentValue.todoCustomFields[${key}=${value}]`, op: 'exists' })(fields(elements));
  test('strings, numbers and booleans as written', () => {
    assert.ok(match('id', 'cf_1', [{ id: 'cf_1' }]));
    assert.ok(match('id', '7', [{ id: 7 }]));
    assert.ok(match('done', 'true', [{ done: true }]));
  });
  test('a missing key, an array or an object is never turned into text', () => {
    assert.ok(!match('id', 'undefined', [{ name: 'no id' }]), '[id=undefined] does not match a missing id');
    assert.ok(!match('id', 'a,b', [{ id: ['a', 'b'] }]), '[id=a,b] does not match the array ["a","b"]');
    assert.ok(!match('id', 'null', [{ id: null }]));
  });
  test('searching text counts toward the budget', () => {
    const text = 'x'.repeat(10_000_000);
    const filter = compileFilter(
      Array.from({ length: 64 }, () => ({ path: 'currentValue.body', op: 'contains', value: 'needle' })),
    );
    assert.throws(() => filter({ ...ctx, currentValue: { body: text } } as FilterContext), FilterBudgetExceeded);
  });
});
