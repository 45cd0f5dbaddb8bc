// A subscription's `headers`: what is accepted is sent as written, what is refused says why without
// the value, and no value reaches a payload or a log line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { invalidHeader } from '../../src/delivery/deliverer.js';
import type { HttpClient } from '../../src/delivery/http-client.js';
import { Deliverer, eventPayload } from '../../src/delivery/index.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { BlueWebhooksError } from '../../src/shared/errors.js';
import { redact } from '../../src/shared/logger.js';
import { activate, SUBSCRIPTION_LIMITS, validateSubscription } from '../../src/subscriptions/subscription.js';

const base = sampleSubscription({ id: 'wh' });
const check = (headers: unknown) => validateSubscription({ ...base, headers }, 'wh').headers;
const refusal = (headers: unknown): string => {
  try {
    check(headers);
  } catch (err) {
    assert.ok(err instanceof BlueWebhooksError);
    assert.equal(err.code, 'INVALID_HEADER');
    return err.message;
  }
  assert.fail(`accepted ${JSON.stringify(headers)}`);
};

test('headers: absent or null means none; names and values within the rules are kept as written', () => {
  const { headers: _, ...older } = base;
  assert.equal(validateSubscription(older, 'wh').headers, null, 'a record from before the field');
  assert.equal(check(null), null);
  const written = {
    Authorization: 'Bearer abc',
    'x-tenant': 'acme',
    "X-!#$%&'*+-.^_`|~1": 'a\tb c',
    Empty: '',
    Latin: 'caf\u00e9',
  };
  assert.deepEqual(check(written), written);
});

test('headers: names the service or HTTP owns are refused, whatever their case', () => {
  for (const name of [
    'Host',
    'content-type',
    'Content-Length',
    'CONTENT-ENCODING',
    'Transfer-Encoding',
    'Connection',
    'Keep-Alive',
    'Upgrade',
    'Expect',
    'TE',
    'Trailer',
    'Proxy-Authorization',
    'User-Agent',
    'traceparent',
    'Tracestate',
    'webhook-id',
    'Webhook-Signature',
    'webhook-timestamp',
    'X-Blue-Signature',
    'x-blue-delivery',
  ]) {
    assert.match(refusal({ [name]: 'v' }), new RegExp(`${name} is set by the service or by HTTP`), name);
  }
});

test('headers: bad names, bad values, wrong types, twice the same name and the limits are refused, and never quote a value', () => {
  const secret = 'sk_live_do_not_log_me';
  const cases: [unknown, RegExp][] = [
    ['Authorization: x', /must be an object/],
    [[['Authorization', 'x']], /must be an object/],
    [{ '': secret }, /is not a header name/],
    [{ 'X Space': secret }, /is not a header name/],
    [{ 'X:Colon': secret }, /is not a header name/],
    [{ 'X-\u00e9': secret }, /is not a header name/],
    [{ 'X-A': 7 }, /must be a string/],
    [{ 'X-A': null }, /must be a string/],
    [{ 'X-A': [secret] }, /must be a string/],
    [{ 'X-A': `${secret}\r\nX-Injected: 1` }, /a character a header cannot carry/],
    [{ 'X-A': `${secret}\n` }, /a character a header cannot carry/],
    [{ 'X-A': `${secret}\u0000` }, /a character a header cannot carry/],
    [{ 'X-A': `${secret}\u0100` }, /a character a header cannot carry/],
    [{ 'X-A': `${secret}\u{1F600}` }, /a character a header cannot carry/],
    [{ 'X-A': ` ${secret}` }, /space at an end/],
    [{ 'X-A': `${secret}\t` }, /space at an end/],
    [{ 'X-A': secret, 'x-a': secret }, /x-a is named twice/],
    [
      Object.fromEntries(Array.from({ length: SUBSCRIPTION_LIMITS.maxHeaders + 1 }, (_, i) => [`X-${i}`, secret])),
      /21 entries; at most 20/,
    ],
    [{ 'X-A': secret.repeat(200) }, /characters; at most 4096/],
  ];
  for (const [headers, message] of cases) {
    const m = refusal(headers);
    assert.match(m, message, JSON.stringify(headers).slice(0, 80));
    assert.ok(!m.includes(secret), `${m} quotes the value`);
  }
});

// Names and values within the rules (up to the limits and past them), and hostile ones: spaces,
// colons, non-ASCII, owned names; CR, LF, NUL, lone surrogates, emoji, space at an end, wrong types.
const tokenName = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,20}$/);
const printableValue = fc.stringMatching(/^[\x21-\x7e](?:[\x20-\x7e]{0,300}[\x21-\x7e])?$/);
const hostileName = fc.oneof(
  tokenName,
  fc.constantFrom('Authorization', 'X-Api-Key', 'Host', 'webhook-id', 'X-Blue-Event', 'Content-Type', 'traceparent'),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
const hostileValue = fc.oneof(
  printableValue,
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `v_${s}`),
  fc.constantFrom('\r\n', '\u0000', '\ud800', ' x', 'x ', '\u{1F600}'),
  fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 })),
);
const anyHeaders = fc.oneof(
  fc.dictionary(tokenName, printableValue, { maxKeys: 24, size: 'max' }),
  fc.dictionary(hostileName, hostileValue, { maxKeys: 24 }),
);

test('headers, any shape: accepted and sent as written with no header the send path refuses, or refused as INVALID_HEADER; values never in the payload nor the logs', async () => {
  const sent: Record<string, string>[] = [];
  const http = {
    post: async (req: { headers: Record<string, string> }) => {
      sent.push(req.headers);
      return { status: 204, durationMs: 1, snippet: null };
    },
  } as unknown as HttpClient;
  const deliverer = new Deliverer(http, 'blue-webhooks/test');
  const event = { ...sampleEvent(), occurredAtMs: 0 };
  await fc.assert(
    fc.asyncProperty(anyHeaders, async (headers) => {
      let sub: ReturnType<typeof validateSubscription>;
      try {
        sub = validateSubscription({ ...base, headers }, 'wh');
      } catch (err) {
        assert.ok(err instanceof BlueWebhooksError);
        assert.ok(['INVALID_HEADER', 'MALFORMED_UNICODE'].includes(err.code), err.message);
        for (const v of Object.values(headers)) {
          if (typeof v === 'string' && v.length >= 8) assert.ok(!err.message.includes(v), err.message);
        }
        return;
      }
      assert.deepEqual(sub.headers, headers);
      const target = activate(sub);
      sent.length = 0;
      const report = await deliverer.attempt(
        { deliveryId: 'd1', event, payload: eventPayload(event), target, eventTimestampMs: 0, entity: null },
        1,
      );
      assert.ok(report.outcome.delivered, report.outcome.message ?? undefined);
      const [got] = sent;
      for (const [name, value] of Object.entries(headers)) assert.equal(got![name], value);
      assert.equal(invalidHeader(got!), null);
      assert.equal(Object.keys(got!).length, new Set(Object.keys(got!).map((n) => n.toLowerCase())).size);
      const visible = `${target.webhookJson}\n${JSON.stringify(redact({ subscription: sub }))}`;
      for (const v of Object.values(headers)) {
        if (typeof v === 'string' && v.length >= 8) assert.ok(!visible.includes(v), 'a value is shown');
      }
    }),
    { numRuns: 2000 },
  );
});
