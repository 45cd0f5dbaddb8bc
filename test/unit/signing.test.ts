import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import {
  blueSignature,
  safeEqual,
  standardSignature,
  verifyBlueSignature,
  verifyStandardSignature,
} from '../../src/delivery/signing.js';

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
  const headers = { 'webhook-id': 'msg_x', 'webhook-timestamp': String(ts), 'webhook-signature': standardSignature(SECRET, 'msg_x', ts, BODY) };
  assert.doesNotThrow(() => new Webhook(Buffer.from(SECRET, 'utf8'), { format: 'raw' }).verify(BODY, headers));
  assert.throws(() => new Webhook(Buffer.from('other', 'utf8'), { format: 'raw' }).verify(BODY, headers));
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
});

test('safeEqual compares strings of any length without throwing', () => {
  assert.ok(safeEqual('abc', 'abc'));
  assert.ok(!safeEqual('abc', 'abd'));
  assert.ok(!safeEqual('abc', 'abcd'));
  assert.ok(!safeEqual('', 'a'));
});
