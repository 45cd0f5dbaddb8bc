// Hostile input for the pure parts: each case below was accepted, or crashed, before the
// poison-proofing change (issue: "No record can stall a partition").
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeEvent, EVENT_LIMITS } from '../../src/codec/event.js';
import type { Registry } from '../../src/codec/registry.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { invalidHeader } from '../../src/delivery/deliverer.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { subscriptionMatches } from '../../src/ingest/pipeline.js';
import { messageBytes } from '../../src/kafka/writer.js';
import { decodeRetry, encodeRetry, type RetryRecord } from '../../src/retries/record.js';
import { BlueWebhooksError } from '../../src/shared/errors.js';
import { createLogger, redact } from '../../src/shared/logger.js';
import {
  compileFilter,
  FILTER_LIMITS,
  FilterBudgetExceeded,
  type FilterContext,
} from '../../src/subscriptions/filter.js';
import {
  activate,
  decodeSubscription,
  SUBSCRIPTION_LIMITS,
  validateSubscription,
} from '../../src/subscriptions/subscription.js';

const noRegistry = {} as Registry;
const problemOf = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, 'a ConfigError (exit 2), not a crash');
    return err.message;
  }
  return 'accepted';
};

describe('config gaps are errors that name the variable', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [
      { DELIVERY_ALLOWLIST: '10.0.0.0/99' },
      /DELIVERY_ALLOWLIST: "10.0.0.0\/99": expected a prefix length from 0 to 32/,
    ],
    [{ DELIVERY_ALLOWLIST: '::1/200' }, /DELIVERY_ALLOWLIST: "::1\/200": expected a prefix length from 0 to 128/],
    [{ DELIVERY_ALLOWLIST: 'foo/33' }, /DELIVERY_ALLOWLIST: "foo\/33": a prefix length goes with an IP address/],
    [{ RETRY_SCHEDULE: '5s,,1m' }, /RETRY_SCHEDULE: expected comma-separated durations with none empty/],
    [{ RETRY_SCHEDULE: ',' }, /RETRY_SCHEDULE: expected comma-separated durations with none empty/],
    [{ RETRY_SCHEDULE: '1m,25d' }, /RETRY_SCHEDULE: expected each delay at most 2147483647 ms/],
    [{ RETRY_SCHEDULE: '99999999999999999999d' }, /RETRY_SCHEDULE: expected each delay at most/],
    [{ CB_FAILURE_RATE: '0x1' }, /CB_FAILURE_RATE: expected a decimal number from 0 to 1/],
    [{ RETRY_JITTER: '1e-1' }, /RETRY_JITTER: expected a decimal number/],
    [{ DELIVERY_USER_AGENT: 'ua\r\nx-injected: 1' }, /DELIVERY_USER_AGENT: expected printable ASCII/],
    [{ STALL_TIMEOUT_MS: '10' }, /STALL_TIMEOUT_MS: expected a duration from 1000/],
    [{ KAFKA_MAX_MESSAGE_BYTES: '10' }, /KAFKA_MAX_MESSAGE_BYTES: expected an integer from 65536/],
  ];
  for (const [env, expected] of cases) test(JSON.stringify(env), () => assert.match(problemOf(env), expected));
  test('good values still pass', () => {
    const c = loadConfig({
      DELIVERY_ALLOWLIST: '10.0.0.0/8,[::1]/128,::1,hooks.internal,*.svc.local',
      RETRY_SCHEDULE: '5s, 1m',
      CB_FAILURE_RATE: '0.25',
    });
    assert.deepEqual(c.retries.scheduleMs, [5000, 60_000]);
    assert.equal(c.health.failureRate, 0.25);
  });
});

describe('events with hostile shapes are refused at decode, with a reason that does not echo them', () => {
  const decodeJson = (v: unknown) =>
    decodeEvent(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)), noRegistry);
  test('currentValue nested 10,000 levels deep', async () => {
    // Built as text: JSON.stringify itself cannot write a value this deep.
    const deep = `${'{"a":'.repeat(10_000)}{}${'}'.repeat(10_000)}`;
    const text = JSON.stringify({ ...sampleEvent(), currentValue: 'DEEP' }).replace('"DEEP"', deep);
    await assert.rejects(decodeJson(text), (err: Error & { code?: string }) => {
      return err.code === 'INVALID_EVENT' && /nested deeper than 64/.test(err.message);
    });
    let ok: unknown = {};
    for (let i = 1; i < EVENT_LIMITS.maxDepth; i++) ok = { a: ok };
    await decodeJson({ ...sampleEvent(), currentValue: ok });
  });
  test('arrays and objects both count as levels, at the exact limit, wherever the deep branch is', async () => {
    const nest = (levels: number, inner: unknown = {}) => {
      let value = inner;
      for (let i = 1; i < levels; i++) value = i % 2 ? [1, 'x', value] : { a: 1, ['__proto__']: value };
      return value;
    };
    // currentValue itself is level 1: maxDepth levels pass, one more does not.
    const atLimit = { wide: [1, 2, 3], deep: nest(EVENT_LIMITS.maxDepth - 1) };
    const overLimit = { wide: [1, 2, 3], deep: nest(EVENT_LIMITS.maxDepth) };
    await decodeJson({ ...sampleEvent(), currentValue: atLimit });
    await assert.rejects(decodeJson({ ...sampleEvent(), currentValue: overLimit }), /nested deeper than 64/);
    await assert.rejects(
      decodeJson({ ...sampleEvent(), previousValue: { first: 'flat', last: [overLimit] } }),
      /previousValue is nested deeper than 64/,
    );
  });
  test('ids longer than the limit', async () => {
    await assert.rejects(
      decodeJson({ ...sampleEvent(), project: { id: 'p'.repeat(300) } }),
      /project\.id is longer than 256/,
    );
  });
  test('a parse error says where, never what', async () => {
    const secretish = '{"id": "evt", "token": "s3cr3t-value';
    await assert.rejects(
      decodeJson(secretish),
      (err: Error) => !err.message.includes('s3cr3t') && /not valid JSON/.test(err.message),
    );
    await assert.rejects(
      decodeJson({ ...sampleEvent(), occurredAt: 'my-secret-date' }),
      (err: Error) => !err.message.includes('my-secret'),
    );
  });
  test('20,000 damaged copies of an event each decode or fail with a BlueWebhooksError, never another exception', async () => {
    // Seeded, so a failure names a copy that can be made again. One to four edits each: a byte
    // replaced, deleted (with up to 20 after it) or inserted, from characters JSON gives meaning to.
    const event = Buffer.from(JSON.stringify(sampleEvent()));
    const tokens = Buffer.from('"\\{}[],:0-entf \u0000\u00ff', 'latin1');
    let seed = 1;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const ends = { decoded: 0, refused: 0 };
    for (let copy = 0; copy < 20_000; copy++) {
      let damaged = Buffer.from(event);
      for (let edits = 1 + random(4); edits > 0; edits--) {
        const at = random(damaged.length);
        const pick = random(tokens.length);
        const token = tokens.subarray(pick, pick + 1);
        const kind = random(3);
        if (kind === 0) damaged[at] = token[0]!;
        else if (kind === 1) damaged = Buffer.concat([damaged.subarray(0, at), damaged.subarray(at + 1 + random(20))]);
        else damaged = Buffer.concat([damaged.subarray(0, at), token, damaged.subarray(at)]);
      }
      try {
        await decodeEvent(damaged, noRegistry);
        ends.decoded++;
      } catch (err) {
        if (!(err instanceof BlueWebhooksError)) assert.fail(`copy ${copy}: ${String(err)}`);
        ends.refused++;
      }
    }
    // Both ends happen: the damage is neither always harmless nor always fatal.
    assert.ok(ends.decoded > 1000 && ends.refused > 1000, JSON.stringify(ends));
  });
  test('subscription parse errors do not quote the secret', async () => {
    const value = Buffer.from('{"id":"wh","secret":"whsec_top_secret_value",');
    await assert.rejects(
      decodeSubscription(value, 'wh', noRegistry),
      (err: Error) => !err.message.includes('top_secret'),
    );
  });
});

describe('subscriptions over the limits are invalid, not a crash', () => {
  test('200 projects x 1,000 events (200,000 index entries)', () => {
    const projectIds = Array.from({ length: 200 }, (_, i) => `p${i}`);
    const events = Array.from({ length: 1000 }, (_, i) => `E${i}`);
    assert.throws(
      () => validateSubscription({ ...sampleSubscription(), metadata: { projectIds, events } }, null),
      /200000 \(project, event\) pairs; at most 20000/,
    );
  });
  test('a record over the size limit', async () => {
    const big = Buffer.from(
      JSON.stringify({ ...sampleSubscription(), name: 'n'.repeat(SUBSCRIPTION_LIMITS.maxRecordBytes) }),
    );
    await assert.rejects(decodeSubscription(big, null, noRegistry), /record of \d+ bytes; at most 262144/);
  });
  test('a URL whose user info cannot be decoded', () => {
    assert.throws(
      () => validateSubscription({ ...sampleSubscription(), url: 'http://%ZZ@example.com/x' }, null),
      /user info has an invalid percent-escape/,
    );
  });
  test("a stored filter that today's limits refuse makes the webhook match nothing, without throwing", () => {
    const filters = { not: Array.from({ length: 300 }, () => ({ not: [] })) };
    const active = activate({ ...sampleSubscription(), filters });
    assert.match(active.problem!, /more than 256 nodes/);
    const e = { ...sampleEvent(), occurredAtMs: 0 };
    assert.equal(
      subscriptionMatches(active, e, () => ({ ...e })),
      'no_match',
    );
  });
  test('a candidate is re-checked against its own projects and events', () => {
    const active = activate(sampleSubscription({ metadata: { projectIds: ['P:TODO'], events: ['X'] } }));
    const e = { ...sampleEvent({ type: 'TODO:X' }), occurredAtMs: 0 };
    const other = { ...e, project: { id: 'P' }, company: { id: active.sub.companyId } };
    assert.equal(
      subscriptionMatches(active, other, () => ({ ...other })),
      'no_match',
    );
  });
});

describe('filter cost is bounded', () => {
  const ctxWith = (currentValue: unknown): FilterContext =>
    ({ ...sampleEvent(), currentValue }) as unknown as FilterContext;
  test('100,000 {"not": []} nodes are refused at validation', () => {
    assert.throws(() => compileFilter(Array.from({ length: 100_000 }, () => ({ not: [] }))), /more than 256 nodes/);
  });
  test('64 neq conditions over a 500,000-element array stop at the visit budget, quickly', () => {
    const f = compileFilter(
      Array.from({ length: 64 }, (_, i) => ({ path: 'currentValue.items', op: 'neq', value: i })),
    );
    const big = ctxWith({ items: Array.from({ length: 500_000 }, (_, i) => i + 100) });
    const t0 = performance.now();
    assert.throws(() => f(big), FilterBudgetExceeded);
    assert.ok(performance.now() - t0 < 1000, 'stops early instead of walking 32 million values');
  });
  test('within the budget, arrays still match element-wise', () => {
    const f = compileFilter({ path: 'currentValue.items', op: 'eq', value: 7 });
    assert.equal(f(ctxWith({ items: [[1, 7]] })), false, 'one level of arrays only, as before');
    assert.equal(f(ctxWith({ items: [1, 7] })), true);
    assert.ok(FILTER_LIMITS.maxVisits >= 10_000);
  });
  test('paths see own properties only', () => {
    assert.equal(compileFilter({ path: 'currentValue.constructor', op: 'exists' })(ctxWith({})), false);
    assert.equal(compileFilter({ path: 'currentValue.toString', op: 'exists' })(ctxWith({})), false);
    assert.equal(
      compileFilter({ path: 'currentValue.items.constructor', op: 'exists' })(ctxWith({ items: [{}] })),
      false,
    );
  });
});

describe('header values and record sizes', () => {
  test('a header value with CR or LF is found before any request', () => {
    assert.equal(invalidHeader({ 'x-blue-event': 'TODO\r\nx-evil: 1', a: 'b' }), 'x-blue-event');
    assert.equal(invalidHeader({ 'x-blue-event': 'TODO_CREATED', 'user-agent': 'blue-webhooks/0.1.0 (é)' }), null);
  });
  test('message size counts key, value and headers', () => {
    assert.equal(messageBytes({ key: 'ab', value: Buffer.alloc(100), headers: { h: 'xyz' } }), 64 + 2 + 100 + 1 + 3);
  });
  test('retry records are checked field by field, event included', () => {
    const good: RetryRecord = {
      v: 1,
      deliveryId: 'd',
      webhookId: 'w',
      attempt: 2,
      retry: 1,
      dueAt: 1,
      firstAttemptAt: 1,
      eventTimestampMs: 1,
      event: sampleEvent(),
    };
    assert.equal(decodeRetry(encodeRetry(good)).deliveryId, 'd');
    assert.equal(decodeRetry(encodeRetry({ ...good, entity: 'A'.repeat(22) })).entity, 'A'.repeat(22));
    const hostileEntities = [42, '', 'x'.repeat(65), { nested: 'x' }, ['a'], null];
    for (const bad of [
      { ...good, attempt: 'x' },
      { ...good, dueAt: null },
      { ...good, event: { ...good.event, event: 'A\nB' } },
      { ...good, webhookId: '' },
      ...hostileEntities.map((entity) => ({ ...good, entity })),
    ]) {
      assert.throws(
        () => decodeRetry(Buffer.from(JSON.stringify(bad))),
        (err: Error & { code?: string }) => err.code === 'INVALID_RETRY_RECORD',
      );
    }
  });
});

describe('log redaction', () => {
  test('by field name at any depth', () => {
    let deep: Record<string, unknown> = { secret: 'DEEP-SECRET' };
    for (let i = 0; i < 40; i++) deep = { level: deep };
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l) });
    log.info('x', { deep, a: { b: { c: { d: { e: { f: { g: { h: { secret: 'EIGHT-DEEP' } } } } } } } } });
    log.info('y', {
      token: 'T1',
      apiKey: 'K1',
      api_key: 'K2',
      Authorization: 'A1',
      cookie: 'C1',
      previousSecret: 'P1',
      headers: { 'set-cookie': 'C2' },
    });
    const out = lines.join('');
    for (const s of ['DEEP-SECRET', 'EIGHT-DEEP', 'T1', 'K1', 'K2', 'A1', 'C1', 'P1', 'C2'])
      assert.ok(!out.includes(`"${s}"`), `${s} is not logged`);
  });
  test('one JSON object a line: time, level, msg, the bindings (redacted too) and the fields', () => {
    const lines: string[] = [];
    const log = createLogger({
      write: (l) => lines.push(l),
      level: 'info',
      bindings: { service: 's', clientSecret: 'B1' },
    });
    log.debug('hidden');
    log
      .child({ partition: 3, auth: { accessToken: 'B2' } })
      .warn('retry at http://u:p@h/x', { attempt: 2, error: new Error('boom') });
    assert.equal(lines.length, 1);
    assert.ok(lines[0]?.endsWith('\n'));
    const entry = JSON.parse(lines[0] ?? '');
    assert.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(
      { ...entry, time: 'T' },
      {
        level: 'warn',
        time: 'T',
        msg: 'retry at http://[redacted]@h/x',
        service: 's',
        clientSecret: '[redacted]',
        partition: 3,
        auth: '[redacted]',
        attempt: 2,
        error: { name: 'Error', message: 'boom' },
      },
    );
  });
  test('URL user info and query strings, in any string', () => {
    const r = redact({
      url: 'https://user:pa55@hooks.example.com/x?token=abc',
      msg: 'failed to reach http://u:p@h/y?sig=1 now',
    }) as Record<string, string>;
    assert.equal(r.url, 'https://[redacted]@hooks.example.com/x?token=[redacted]');
    assert.equal(r.msg, 'failed to reach http://[redacted]@h/y?sig=[redacted] now');
  });
  test('URLs as the WHATWG parser cuts them: the last @, no slashes, backslashes, spaces and quotes, fragments', () => {
    const cases: [string, string][] = [
      ['https://user:p@ss@h/', 'https://[redacted]@h/'],
      ['https://user:pa ss@h/x ok', 'https://[redacted]@h/x ok'],
      [`https://user:pa"ss@h/`, 'https://[redacted]@h/'],
      ['https:user:PW@h', 'https:[redacted]@h'],
      ['http:\\\\user:PW@h', 'http:\\\\[redacted]@h'],
      [
        'back at https://h/cb#access_token=SECRET&state=1',
        'back at https://h/cb#access_token=[redacted]&state=[redacted]',
      ],
      ['https://h/?token=abc def=SECRET', 'https://h/?token=[redacted]'],
      ['https://h/x?token=abc failed: timeout', 'https://h/x?token=[redacted] failed: timeout'],
      ['redis://:SECRET@127.0.0.1:6379/0 down', 'redis://[redacted]@127.0.0.1:6379/0 down'],
      ['see https://example.com/docs#usage', 'see https://example.com/docs#usage'],
      ['mailto:someone@example.com', 'mailto:someone@example.com'],
    ];
    for (const [text, want] of cases) assert.equal(redact(text), want, text);
  });
  test('keys, error fields and Buffers are redacted too; reserved line keys cannot be overwritten', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l) });
    const err = Object.assign(new Error('at https://u:ERRPW@h'), {
      name: 'http://a:NAMEPW@c',
      code: { token: 'CODETOKEN' },
    });
    log.info('x', {
      level: 'error',
      time: 'forged',
      msg: 'forged',
      error: err,
      body: Buffer.from('BUFFERSECRET'),
      'https://u:KEYPW@h': 1,
      pass: 'P1',
      pwd: 'P2',
      passphrase: 'P3',
      auth: 'P4',
      bearer: 'P5',
      key: 'P6',
      keyBase64: 'kept',
    });
    const entry = JSON.parse(lines[0]!);
    assert.equal(entry.level, 'info');
    assert.equal(entry.msg, 'x');
    assert.equal(entry.level_field, 'error');
    assert.equal(entry.keyBase64, 'kept');
    assert.equal(entry.body, '[Buffer of 12 bytes]');
    for (const secret of ['ERRPW', 'NAMEPW', 'CODETOKEN', 'BUFFERSECRET', 'KEYPW', 'P1', 'P2', 'P3', 'P4', 'P5', 'P6'])
      assert.ok(!lines[0]!.includes(secret), secret);
  });
  test('an object seen twice is written once: shared sub-objects stay linear, a cycle ends', () => {
    const leaf = { secret: 'S', n: 1 };
    let shared: Record<string, unknown> = leaf;
    for (let i = 0; i < 20; i++) shared = { left: shared, right: shared };
    const out = JSON.stringify(redact({ shared }));
    assert.ok(out.length < 2000, `${out.length} bytes`);
    const cycle: Record<string, unknown> = { name: 'c' };
    cycle.self = cycle;
    assert.deepEqual(redact({ cycle }), { cycle: { name: 'c', self: '[repeated]' } });
  });
});
