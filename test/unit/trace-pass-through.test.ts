// With tracing off, an event's traceparent is passed on unchanged, if it is a valid one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tracing } from '../../src/tracing/index.js';

test('a valid traceparent is passed on as received when tracing is off, and nothing else', () => {
  const off = new Tracing({ endpoint: '', serviceName: 't', instanceId: 't' });
  const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  assert.equal(off.passThrough({ traceparent: Buffer.from(valid) }), valid);
  assert.equal(off.passThrough({ traceparent: valid }), valid);
  for (const bad of [
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    `${valid}\r\nx-injected: 1`,
    ` ${valid}`,
    '',
  ]) {
    assert.equal(off.passThrough({ traceparent: bad }), undefined, JSON.stringify(bad));
  }
  assert.equal(off.passThrough({ traceparent: [valid, valid] }), undefined, 'two headers: neither');
  assert.equal(off.passThrough({}), undefined);
  assert.equal(off.passThrough(undefined), undefined);
  const on = new Tracing({ endpoint: 'http://127.0.0.1:4318', serviceName: 't', instanceId: 't' });
  assert.equal(on.passThrough({ traceparent: valid }), undefined, 'with tracing on, the attempt span gives its own');
});
