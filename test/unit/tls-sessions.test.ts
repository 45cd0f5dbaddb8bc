import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { sessionExpiry, TlsSessionStore } from '../../src/delivery/tls-sessions.js';

// A session as Node 20 gave it from a TLS 1.3 handshake (trimmed to the fields read, in order):
// SEQUENCE { version 1, ssl version 0x0304, cipher, id, master key, [1] time, [2] timeout 7200 }.
const der = (time: number, timeout: number) => {
  const int = (n: number) => {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
    if (bytes.length === 0 || bytes[0]! & 0x80) bytes.unshift(0);
    return [0x02, bytes.length, ...bytes];
  };
  const explicit = (tag: number, inner: number[]) => [tag, inner.length, ...inner];
  const body = [
    ...int(1),
    ...int(0x0304),
    0x04,
    2,
    0x13,
    0x02,
    0x04,
    0,
    0x04,
    0,
    ...explicit(0xa1, int(time)),
    ...explicit(0xa2, int(timeout)),
  ];
  return Buffer.from([0x30, body.length, ...body]);
};

test("a session's expiry is its time plus its timeout, from OpenSSL's encoding", () => {
  assert.equal(sessionExpiry(der(1_796_000_000, 7200)), (1_796_000_000 + 7200) * 1000);
});

test('any bytes at all: an expiry or null, never a throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const r = sessionExpiry(Buffer.from(bytes));
      assert.ok(r === null || Number.isFinite(r));
    }),
    { numRuns: 5000 },
  );
  // Truncations of a real shape, too.
  const whole = der(1_796_000_000, 7200);
  for (let n = 0; n < whole.length; n++) assert.equal(sessionExpiry(whole.subarray(0, n)), null);
});

test('the store: least recently used dropped past its size, an expired session never offered, none kept at size 0', () => {
  let now = 1_796_000_000_000;
  const store = new TlsSessionStore(2, () => now);
  const s = (timeout: number) => der(now / 1000, timeout);
  store.set('a', s(7200));
  store.set('b', s(7200));
  assert.ok(store.get('a'), 'a used: b is now the least recent');
  store.set('c', s(7200));
  assert.equal(store.get('b'), undefined);
  assert.ok(store.get('a') && store.get('c'));
  store.set('short', s(10));
  now += 11_000;
  assert.equal(store.get('short'), undefined, 'its ticket said 10 s');
  const none = new TlsSessionStore(0, () => now);
  none.set('a', s(7200));
  assert.equal(none.get('a'), undefined);
});
