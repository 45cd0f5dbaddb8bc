// Text from outside: well-formed strings, strict times, and Redis errors classified by kind.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReplyError } from 'ioredis';
import { decodeEvent } from '../../src/codec/event.js';
import type { Registry } from '../../src/codec/registry.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { redisError } from '../../src/shared/redis.js';
import { malformedStringPath, parseRfc3339 } from '../../src/shared/text.js';
import { decodeSubscription, validateSubscription } from '../../src/subscriptions/subscription.js';

const noRegistry = { decode: () => assert.fail('registry used for JSON') } as unknown as Registry;
const LONE = '\ud83d'; // the first half of an emoji, as a cut string leaves it

test('RFC 3339 times only: no local time, no guessed years, no impossible dates', () => {
  assert.equal(parseRfc3339('2026-12-04T10:00:00Z'), Date.UTC(2026, 11, 4, 10));
  assert.equal(parseRfc3339('2026-12-04T10:00:00.123456+02:00'), Date.UTC(2026, 11, 4, 8, 0, 0, 123));
  assert.equal(parseRfc3339('2024-02-29T00:00:00-00:30'), Date.UTC(2024, 1, 29, 0, 30));
  assert.equal(parseRfc3339('9999-12-31T23:59:59.999Z'), Date.UTC(9999, 11, 31, 23, 59, 59, 999));
  assert.equal(parseRfc3339('0001-01-01T00:00:00Z'), Date.UTC(2001, 0, 1) - 2000 * 365.2425 * 86_400_000);
  for (const bad of [
    '1', // Date.parse: 2001
    '2026-12-04T10:00:00', // Date.parse: local time
    '2026-12-04',
    '2026-02-29T00:00:00Z', // not a leap year
    '2026-02-30T00:00:00Z', // Date.parse: March 2
    '2026-13-01T00:00:00Z',
    '2026-12-04T24:00:00Z',
    '2026-12-04T10:60:00Z',
    '2026-12-04T10:00:60Z',
    '2026-12-04T10:00:00+24:00',
    ' 2026-12-04T10:00:00Z',
    '2026-12-04T10:00:00Z\u0000',
    '+275760-09-13T00:00:00Z',
    `2026-12-04T10:00:00Z${LONE}`,
  ]) {
    assert.equal(parseRfc3339(bad), null, JSON.stringify(bad));
  }
});

test('the path of the first string that is not well-formed, keys included, and never the value', () => {
  assert.equal(malformedStringPath({ a: ['x', { b: 'ok' }], c: 'é😀' }), null);
  assert.equal(malformedStringPath({ metadata: { projectIds: ['p', `x${LONE}`] } }), 'metadata.projectIds[1]');
  assert.equal(malformedStringPath({ filters: { [`k${LONE}`]: 1 } }), 'filters (a key)');
  assert.equal(malformedStringPath('\udc00'), '(value)');
  // Deeper than the stack: walked without recursion.
  let deep: unknown = LONE;
  for (let i = 0; i < 200_000; i++) deep = [deep];
  assert.match(malformedStringPath(deep, 'v')!, /^v(\[0\]){200000}$/);
});

test('a subscription with a lone surrogate in any string is refused as MALFORMED_UNICODE, without the secret', () => {
  const s = sampleSubscription({ id: 'wh', secret: 'top-secret-value' });
  const cases: Record<string, unknown>[] = [
    { metadata: { events: ['TODO_CREATED'], projectIds: [`p${LONE}`] } },
    { metadata: { events: [`TODO${LONE}`], projectIds: ['p'] } },
    { name: `n${LONE}` },
    { companyId: LONE },
    { url: `http://127.0.0.1/${LONE}` },
    { secret: `top-secret-value${LONE}` },
    { filters: { currentValue: { title: `t${LONE}` } } },
    { filters: JSON.stringify({ currentValue: { title: `t${LONE}` } }) },
  ];
  for (const fields of cases) {
    assert.throws(
      () => validateSubscription({ ...s, ...fields }, 'wh'),
      (err: { code: string; message: string }) =>
        err.code === 'MALFORMED_UNICODE' && !err.message.includes('top-secret') && err.message.isWellFormed(),
      Object.keys(fields)[0],
    );
  }
  // The same through JSON text, where "\ud83d" is how a lone surrogate travels.
  const json = JSON.stringify({ ...s, name: `n${LONE}` });
  assert.ok(json.includes('\\ud83d'));
  return assert.rejects(decodeSubscription(Buffer.from(json), 'wh', noRegistry), { code: 'MALFORMED_UNICODE' });
});

test('a subscription value that is not UTF-8 is refused, not read as U+FFFD', async () => {
  const json = Buffer.from(JSON.stringify(sampleSubscription({ id: 'wh', name: 'AB' })));
  json[json.indexOf('AB')] = 0xff;
  await assert.rejects(decodeSubscription(json, 'wh', noRegistry), { code: 'MALFORMED_UNICODE' });
});

test('subscription times: RFC 3339 with an offset, or the record is invalid', () => {
  const s = sampleSubscription({ id: 'wh' });
  for (const updatedAt of ['1', '2026-12-04T10:00:00', '2026-02-30T00:00:00Z', 'Fri, 04 Dec 2026 10:00:00 GMT']) {
    assert.throws(
      () => validateSubscription({ ...s, updatedAt }, 'wh'),
      /updatedAt is not an RFC 3339 time/,
      updatedAt,
    );
  }
  assert.equal(
    validateSubscription({ ...s, updatedAt: '9999-12-31T23:59:59Z' }, 'wh').updatedAt,
    '9999-12-31T23:59:59Z',
  );
});

test('event ids with a lone surrogate, and event bytes that are not UTF-8, are refused', async () => {
  const e = sampleEvent();
  for (const bad of [
    { ...e, id: `evt${LONE}` },
    { ...e, project: { id: LONE } },
    { ...e, company: { id: `c${LONE}` } },
    { ...e, user: { id: `u${LONE}` } },
  ]) {
    await assert.rejects(decodeEvent(Buffer.from(JSON.stringify(bad)), noRegistry), {
      code: 'INVALID_EVENT',
      message: /not well-formed Unicode/,
    });
  }
  const bytes = Buffer.from(JSON.stringify({ ...e, id: 'evt_AB' }));
  bytes[bytes.indexOf('AB')] = 0xc3; // a two-byte sequence cut short
  await assert.rejects(decodeEvent(bytes, noRegistry), { code: 'INVALID_JSON', message: /not valid UTF-8/ });
});

test('Redis errors are classified by kind: a refused command is final, a connection fault or "not now" waits', () => {
  const reply = (message: string) => new ReplyError(message);
  for (const message of [
    'ERR user_script:9: Expected value but found invalid token at character 1 script: 1f0c…, on @user_script:9.',
    'WRONGTYPE Operation against a key holding the wrong kind of value',
    "ERR wrong number of arguments for 'hset' command",
  ]) {
    const err = redisError('applying', reply(message));
    assert.deepEqual([err.code, err.retriable], ['REDIS_REJECTED', false], message);
  }
  for (const err of [
    reply('LOADING Redis is loading the dataset in memory'),
    reply('BUSY Redis is busy running a script.'),
    reply('CLUSTERDOWN The cluster is down'),
    reply('TRYAGAIN Multiple keys request during rehashing of slot'),
    reply('READONLY You can not write against a read only replica.'),
    reply("OOM command not allowed when used memory > 'maxmemory'."),
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
    new Error('Connection is closed.'),
  ]) {
    const classified = redisError('applying', err);
    assert.deepEqual([classified.code, classified.retriable], ['REDIS_UNAVAILABLE', true], err.message);
  }
});
