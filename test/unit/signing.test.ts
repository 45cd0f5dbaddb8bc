import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { Deliverer } from '../../src/delivery/deliverer.js';
import type { HttpClient } from '../../src/delivery/http-client.js';
import { eventPayload } from '../../src/delivery/payload.js';
import {
  blueSignature,
  safeEqual,
  standardSignature,
  verifyBlueSignature,
  verifyStandardSignature,
} from '../../src/delivery/signing.js';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { activate, validateSubscription } from '../../src/subscriptions/subscription.js';

// Golden vectors, computed independently with openssl:
//   printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'söme-secret'                       (hex)
//   printf 'msg_golden.1700000000.%s' "$BODY" | openssl dgst -sha256 -hmac 'söme-secret' -binary | base64
const SECRET = 'söme-secret'; // non-ASCII on purpose: keys are the secret's UTF-8 bytes
const BODY = '{"event":"TODO_CREATED","webhook":{"id":"wh_1"}}';
const BLUE_HEX = '843c511ca9e067c34ec6e190b21ba29df5aa2ca9e57dc953f421a396e1f9a462';
const STANDARD = 'v1,7nXcEtEZeJKk1Jq7nWI1K5uhxF0L3NVR1W8a7SUU90Q=';

test('X-Blue-Signature matches the golden vector', () => {
  assert.equal(blueSignature(SECRET, BODY), BLUE_HEX);
  assert.equal(blueSignature(SECRET, Buffer.from(BODY)), BLUE_HEX);
});

test('webhook-signature matches the golden vector', () => {
  assert.equal(standardSignature(SECRET, 'msg_golden', 1700000000, BODY), STANDARD);
});

test('the standardwebhooks package verifies our signature (key = UTF-8 bytes of the secret)', () => {
  const ts = Math.floor(Date.now() / 1000);
  const headers = {
    'webhook-id': 'msg_x',
    'webhook-timestamp': String(ts),
    'webhook-signature': standardSignature(SECRET, 'msg_x', ts, BODY),
  };
  assert.doesNotThrow(() => new Webhook(Buffer.from(SECRET, 'utf8'), { format: 'raw' }).verify(BODY, headers));
  assert.throws(() => new Webhook(Buffer.from('other', 'utf8'), { format: 'raw' }).verify(BODY, headers));
});

// The Standard Webhooks specification's own vector (also what the standardwebhooks package
// signs): a whsec_ secret is a base64 key. X-Blue-Signature keys with the secret as stored:
//   printf '%s' '{"test": 2432232314}' | openssl dgst -sha256 -hmac 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const WHSEC = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const SPEC_BODY = '{"test": 2432232314}';

test('a whsec_ secret signs webhook-signature with its decoded key (the specification vector), X-Blue-Signature with the string', () => {
  assert.equal(
    standardSignature(WHSEC, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, SPEC_BODY),
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  );
  assert.equal(blueSignature(WHSEC, SPEC_BODY), '80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c');
});

test('the standardwebhooks package verifies a whsec_ secret the usual way: new Webhook(secret)', () => {
  const ts = Math.floor(Date.now() / 1000);
  const headers = {
    'webhook-id': 'msg_x',
    'webhook-timestamp': String(ts),
    'webhook-signature': standardSignature(WHSEC, 'msg_x', ts, BODY),
  };
  assert.doesNotThrow(() => new Webhook(WHSEC).verify(BODY, headers));
  assert.throws(() => new Webhook('whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA').verify(BODY, headers));
});

test('verifiers accept the right signature and refuse tampering, stale timestamps and other secrets', () => {
  assert.ok(verifyBlueSignature(SECRET, BODY, BLUE_HEX));
  assert.ok(!verifyBlueSignature(SECRET, `${BODY} `, BLUE_HEX));
  assert.ok(!verifyBlueSignature('other', BODY, BLUE_HEX));
  assert.ok(!verifyBlueSignature(SECRET, BODY, BLUE_HEX.slice(1)));
  const h = { id: 'msg_golden', timestamp: '1700000000', signature: `v1,bogus ${STANDARD}` };
  assert.ok(verifyStandardSignature(SECRET, h, BODY, { nowSec: 1700000100 }));
  assert.ok(!verifyStandardSignature(SECRET, h, BODY, { nowSec: 1700000000 + 301 }), 'outside the tolerance');
  assert.ok(!verifyStandardSignature(SECRET, { ...h, id: 'msg_other' }, BODY, { nowSec: 1700000000 }));
  // The timestamp is the header as received: spellings of the same number are other strings.
  for (const timestamp of [
    ' 1700000000',
    '1700000000 ',
    '+1700000000',
    '0x6553f100',
    '1.7e9',
    '1700000000.0',
    '',
    '-1',
  ])
    assert.ok(
      !verifyStandardSignature(SECRET, { ...h, timestamp }, BODY, { nowSec: 1700000000 }),
      JSON.stringify(timestamp),
    );
});

test('safeEqual compares strings of any length without throwing', () => {
  assert.ok(safeEqual('abc', 'abc'));
  assert.ok(!safeEqual('abc', 'abd'));
  assert.ok(!safeEqual('abc', 'abcd'));
  assert.ok(!safeEqual('', 'a'));
});

test('during a rotation webhook-signature carries both signatures, current first; after it, only the current one', () => {
  const deliverer = new Deliverer({} as HttpClient, 'blue-webhooks-test');
  const current = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const previous = 'whsec_c2VjcmV0LWJlZm9yZS10aGUtcm90YXRpb24=';
  const delivery = (expiresAt: string | null) => {
    const sub = validateSubscription(
      { ...sampleSubscription(), secret: current, previousSecret: previous, previousSecretExpiresAt: expiresAt },
      null,
    );
    const event = { ...sampleEvent(), occurredAtMs: Date.now() };
    return {
      deliveryId: 'msg_rot',
      event,
      payload: eventPayload(event),
      target: activate(sub),
      eventTimestampMs: Date.now(),
      entity: null,
    };
  };
  const body = Buffer.from(BODY);
  const during = deliverer.headers(delivery(new Date(Date.now() + 60_000).toISOString()), body, 1);
  const signatures = during['webhook-signature']!.split(' ');
  assert.equal(signatures.length, 2);
  assert.equal(
    signatures[0],
    standardSignature(current, 'msg_rot', Number(during['webhook-timestamp']), body),
    'the current one first',
  );
  const headers = {
    'webhook-id': 'msg_rot',
    'webhook-timestamp': during['webhook-timestamp']!,
    'webhook-signature': during['webhook-signature']!,
  };
  for (const secret of [current, previous])
    assert.doesNotThrow(() => new Webhook(secret).verify(BODY, headers), 'either secret verifies');
  assert.equal(during['x-blue-signature'], blueSignature(current, body), 'X-Blue-Signature: the current secret only');
  // (A previous secret without an expiry is refused when the record is read: see codec.test.ts.)
  for (const expiresAt of [new Date(Date.now() - 1000).toISOString()]) {
    const after = deliverer.headers(delivery(expiresAt), body, 1);
    assert.equal(after['webhook-signature']!.split(' ').length, 1, `expiry ${expiresAt}: only the current one`);
    assert.throws(() =>
      new Webhook(previous).verify(BODY, {
        ...headers,
        'webhook-timestamp': after['webhook-timestamp']!,
        'webhook-signature': after['webhook-signature']!,
      }),
    );
  }
});
