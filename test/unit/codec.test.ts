import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeEvent } from '../../src/codec/event.js';
import type { Registry } from '../../src/codec/registry.js';
import { deliveryBody, deliveryId, eventPayload } from '../../src/delivery/payload.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { activate, validateSubscription } from '../../src/subscriptions/subscription.js';

// JSON decoding never touches the registry.
const noRegistry = { decode: () => assert.fail('registry used for JSON') } as unknown as Registry;
const decodeJson = (v: unknown) => decodeEvent(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)), noRegistry);

test('a JSON event decodes and normalises', async () => {
  const e = sampleEvent({ eventId: 'evt_1' });
  const d = await decodeJson(`  \n${JSON.stringify(e)}`);
  assert.equal(d.id, 'evt_1');
  assert.equal(d.occurredAtMs, Date.parse(e.occurredAt));
  assert.deepEqual(d.currentValue, e.currentValue);
});

test('bad events are refused with a stable code and a reason', async () => {
  const e = sampleEvent();
  const cases: [unknown, string, RegExp][] = [
    ['\x01\x02garbage', 'DECODE_FAILED', /neither Confluent-framed Avro/],
    ['{"id": ', 'INVALID_JSON', /not valid JSON/],
    [{ ...e, id: undefined }, 'INVALID_EVENT', /required field id/],
    [{ ...e, event: '' }, 'INVALID_EVENT', /required field event/],
    [{ ...e, project: {} }, 'INVALID_EVENT', /project\.id/],
    [{ ...e, company: undefined }, 'INVALID_EVENT', /company\.id/],
    [{ ...e, occurredAt: 'yesterday' }, 'INVALID_EVENT', /ISO-8601/],
    [{ ...e, currentValue: [1, 2] }, 'INVALID_EVENT', /currentValue must be a JSON object/],
    [{ ...e, event: 'TODO CREATED; DROP' }, 'INVALID_EVENT', /event type must be/],
    ['[]', 'DECODE_FAILED', /neither/],
  ];
  for (const [value, code, message] of cases) {
    await assert.rejects(
      decodeJson(value),
      (err: { code: string; message: string }) => err.code === code && message.test(err.message),
    );
  }
  await assert.rejects(decodeEvent(null, noRegistry), /empty value/);
});

test('new event types need no change', async () => {
  const d = await decodeJson(sampleEvent({ type: 'TODO_CUSTOM_FIELD_VALUE_CHANGED_V2' }));
  assert.equal(d.event, 'TODO_CUSTOM_FIELD_VALUE_CHANGED_V2');
});

test('subscriptions are validated, and the key must match the id', () => {
  const s = sampleSubscription();
  assert.equal(validateSubscription(s, s.id).id, s.id);
  assert.equal(validateSubscription({ ...s, secret: '' }, s.id).secret, null, 'an empty secret means none');
  const bad: [unknown, RegExp][] = [
    [{ ...s, url: 'ftp://x/' }, /scheme must be http or https/],
    [{ ...s, url: 'not a url' }, /not a valid absolute URL/],
    [{ ...s, metadata: { events: 'TODO_CREATED', projectIds: [] } }, /metadata.events/],
    [{ ...s, enabled: 'yes' }, /enabled/],
    [{ ...s, companyId: undefined }, /companyId/],
    [{ ...s, status: 'SICK' }, /status/],
    [{ ...s, filters: { path: 'nowhere', op: 'eq', value: 1 } }, /filter/],
  ];
  for (const [v, message] of bad) assert.throws(() => validateSubscription(v, s.id), message);
  assert.throws(() => validateSubscription(s, 'other-key'), /differs from the record key/);
});

test('rateLimitPerSecond and ordering: optional, null or absent means none, anything else odd is refused', () => {
  const { rateLimitPerSecond: _r, ordering: _o, ...older } = sampleSubscription();
  const plain = validateSubscription(older, older.id);
  assert.equal(plain.rateLimitPerSecond, null, 'a record written before the fields existed has no limit');
  assert.equal(plain.ordering, 'none');
  assert.equal(validateSubscription({ ...older, rateLimitPerSecond: null, ordering: null }, older.id).ordering, 'none');
  const set = validateSubscription({ ...older, rateLimitPerSecond: 20, ordering: 'entity' }, older.id);
  assert.deepEqual([set.rateLimitPerSecond, set.ordering], [20, 'entity']);
  for (const rate of [0, -1, 1.5, '20', 1e9, Number.NaN, true, [20], { n: 20 }]) {
    assert.throws(
      () => validateSubscription({ ...older, rateLimitPerSecond: rate }, older.id),
      /rateLimitPerSecond must be an integer from 1 to 100000/,
      String(rate),
    );
  }
  for (const ordering of ['ENTITY', 'entity ', 'key', '', 1, true, {}]) {
    assert.throws(() => validateSubscription({ ...older, ordering }, older.id), /ordering must be/, String(ordering));
  }
});

test('the spliced body is exactly Blue payload JSON, and never has the secret', () => {
  const e = sampleEvent();
  const s = sampleSubscription({ secret: 'do-not-leak' });
  const body = deliveryBody(eventPayload({ ...e, occurredAtMs: 0 }), activate(s).webhookJson);
  const parsed = JSON.parse(body);
  assert.equal(parsed.event, e.event);
  assert.equal(parsed.webhook.id, s.id);
  assert.deepEqual(parsed.currentValue, e.currentValue);
  assert.ok(!body.includes('do-not-leak'));
  assert.ok(body.length > 2000 && body.length < 4000, `a realistic body is 2-3 KB (got ${body.length})`);
});

test("the payload's webhook.url carries no user info, query or fragment; other URLs are shown as written", () => {
  const view = (url: string) => JSON.parse(activate(sampleSubscription({ url })).webhookJson).url;
  assert.equal(view('https://user:PW@hooks.example.com/in?token=TOKEN#frag=F'), 'https://hooks.example.com/in');
  assert.equal(view('https://hooks.example.com/in'), 'https://hooks.example.com/in');
  assert.equal(
    view('https://hooks.example.com'),
    'https://hooks.example.com',
    'not normalised when there is nothing to take out',
  );
});

test('delivery ids are stable per (event, webhook) and differ otherwise', () => {
  assert.equal(deliveryId('evt_1', 'wh_1'), deliveryId('evt_1', 'wh_1'));
  assert.notEqual(deliveryId('evt_1', 'wh_1'), deliveryId('evt_1', 'wh_2'));
  assert.notEqual(deliveryId('evt_1w', 'h_1'), deliveryId('evt_1', 'wh_1'));
  assert.match(deliveryId('a', 'b'), /^msg_[A-Za-z0-9_-]{27}$/);
});

test('secrets: whsec_ must be base64 after the prefix; previousSecret and its expiry are optional; messages never quote a secret', () => {
  const s = sampleSubscription();
  assert.equal(
    validateSubscription({ ...s, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, s.id).secret,
    'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  );
  assert.equal(
    validateSubscription({ ...s, secret: 'any other string' }, s.id).secret,
    'any other string',
    'other secrets keep their rule',
  );
  const rotated = validateSubscription(
    { ...s, previousSecret: 'old-secret', previousSecretExpiresAt: '2026-12-01T00:00:00Z' },
    s.id,
  );
  assert.deepEqual([rotated.previousSecret, rotated.previousSecretExpiresAt], ['old-secret', '2026-12-01T00:00:00Z']);
  assert.equal(
    validateSubscription({ ...s, previousSecret: '', previousSecretExpiresAt: '2026-12-01T00:00:00Z' }, s.id)
      .previousSecretExpiresAt,
    null,
    'no previous secret, no expiry',
  );
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ secret: 'whsec_not*base64!' }, /secret starts with whsec_ but the rest is not base64/],
    [{ secret: 'whsec_' }, /not base64/],
    [{ secret: 'whsec_abc' }, /not base64/],
    [{ previousSecret: 'whsec_%%%%' }, /previousSecret starts with whsec_/],
    [{ previousSecret: 42 }, /previousSecret must be a string or null/],
    [{ secret: 'x'.repeat(1025) }, /secret is longer than 1024/],
    [
      { previousSecret: 'old', previousSecretExpiresAt: 'tomorrow' },
      /previousSecretExpiresAt must be an RFC 3339 time/,
    ],
    [{ previousSecret: 'old', previousSecretExpiresAt: 1 }, /previousSecretExpiresAt/],
    [{ previousSecret: 'old' }, /previousSecret needs previousSecretExpiresAt/],
    [{ previousSecret: 'old', previousSecretExpiresAt: null }, /previousSecret needs previousSecretExpiresAt/],
    [{ previousSecret: 'old', previousSecretExpiresAt: '9999-12-31T00:00:00Z' }, /more than 30 days ahead/],
    [{ previousSecret: 'old', previousSecretExpiresAt: '+275760-09-13T00:00:00.000Z' }, /RFC 3339/],
    [
      { secret: 'same-secret', previousSecret: 'same-secret', previousSecretExpiresAt: '2026-01-01T00:00:00Z' },
      /previousSecret is the same as secret/,
    ],
  ];
  for (const [fields, message] of bad) {
    assert.throws(
      () => validateSubscription({ ...s, ...fields }, s.id),
      (err: Error) => message.test(err.message) && !/not\*base64|%%%%|same-secret/.test(err.message),
      JSON.stringify(fields).slice(0, 60),
    );
  }
});

test('numbers JSON cannot carry exactly are refused with a reason, not sent changed', async () => {
  const e = sampleEvent();
  const withValue = (text: string) => JSON.stringify({ ...e, currentValue: { n: 0 } }).replace('"n":0', `"n":${text}`);
  for (const text of ['1e400', '-1e400', '12345678901234567890', '9007199254740993', '[1, 2, 18446744073709551615]']) {
    await assert.rejects(
      decodeJson(withValue(text)),
      { code: 'INVALID_EVENT', message: /currentValue holds a number JSON cannot carry exactly/ },
      text,
    );
  }
  for (const text of [
    '9007199254740991',
    '-9007199254740991',
    '1.5',
    '6.02e23',
    '1e-300',
    '0.1',
    '1.7976931348623157e308',
  ]) {
    const d = await decodeJson(withValue(text));
    assert.equal(JSON.stringify(d.currentValue!.n), JSON.stringify(JSON.parse(text)), text);
  }
});
