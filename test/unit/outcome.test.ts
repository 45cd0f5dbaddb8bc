import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyAttempt, parseRetryAfter } from '../../src/delivery/classify.js';
import { TargetRefusedError } from '../../src/delivery/target-guard.js';

const status = (s: number, headers: Record<string, string> = {}) => classifyAttempt({ status: s, headers }, 1_000_000);

test('2xx is delivered', () => {
  for (const s of [200, 201, 204, 299]) assert.equal(status(s).delivered, true);
});

test('408, 429 and 5xx are retriable; other 4xx and 3xx are final; 410 says gone', () => {
  for (const s of [408, 429, 500, 502, 503, 504])
    assert.deepEqual([status(s).delivered, status(s).retriable], [false, true], String(s));
  for (const s of [301, 302, 400, 401, 403, 404, 410, 422]) assert.equal(status(s).retriable, false, String(s));
  assert.equal(status(410).gone, true);
  assert.match(status(302).message!, /redirects are not followed/);
});

test('Retry-After is read on 429 and 503, as seconds or an HTTP date', () => {
  assert.equal(status(429, { 'retry-after': '7' }).retryAfterMs, 7000);
  assert.equal(
    status(503, { 'retry-after': new Date(1_000_000 + 5000).toUTCString() }).retryAfterMs,
    4000 + 1000 - (1_000_000 % 1000),
  );
  assert.equal(status(500, { 'retry-after': '7' }).retryAfterMs, null);
  assert.equal(parseRetryAfter('soon', 0), null);
});

test('request errors map to stable codes', () => {
  const err = (code: string) => classifyAttempt({ error: Object.assign(new Error(code), { code }) });
  assert.deepEqual([err('ECONNREFUSED').code, err('ECONNREFUSED').retriable], ['CONNECT_FAILED', true]);
  assert.equal(err('UND_ERR_HEADERS_TIMEOUT').code, 'TIMEOUT');
  assert.equal(err('UND_ERR_CONNECT_TIMEOUT').code, 'TIMEOUT');
  assert.equal(err('ECONNRESET').code, 'CONNECTION_RESET');
  assert.equal(err('ENOTFOUND').code, 'DNS_FAILED');
  const abort = classifyAttempt({ error: Object.assign(new Error('aborted'), { name: 'TimeoutError' }) });
  assert.equal(abort.code, 'TIMEOUT');
  const refused = classifyAttempt({
    error: Object.assign(new Error('connect failed'), { cause: new TargetRefusedError('internal') }),
  });
  assert.deepEqual([refused.code, refused.retriable], ['TARGET_REFUSED', false]);
});
