// The README's main command: `npm run demo` delivers sample events whose signatures verify.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stackEnv } from '../helpers/env.js';
import { runScript } from '../helpers/run-script.js';

test('npm run demo delivers sample events with valid signatures, then stops cleanly', async () => {
  const { code, output } = await runScript('src/demo/run.ts', [], {
    ...process.env,
    ...stackEnv(),
    DEMO_EVENTS: '2',
    METRICS_PORT: '0',
    REDIS_KEY_PREFIX: `test:demo:${process.pid}:`,
  });
  assert.equal(code, 0, output);
  const received = output.split('\n').filter((l) => l.includes('[demo] received'));
  assert.ok(received.length >= 2, output);
  for (const l of received) assert.match(l, /X-Blue-Signature valid, webhook-signature valid/);
  // Around the deliveries: the outcome read back from the results topic, and the port it really listens on.
  assert.match(output, /outcome on blue\.webhook-results: DELIVERED, HTTP 200, \d+ ms, for msg_/);
  // Every delivery shown has its outcome shown too, the last one included (the demo used to stop
  // on the last receipt, before its outcome was read back).
  for (const l of received) {
    const id = / delivery (msg_\S+) /.exec(l)?.[1];
    assert.ok(id && output.includes(`for ${id}`), `no outcome shown for ${id}\n${output}`);
  }
  const port = Number(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(output)?.[1]);
  assert.ok(port > 0, 'the metrics URL names the port chosen (METRICS_PORT=0 here)');
  // A healthy start prints no error-level line.
  assert.doesNotMatch(output, /"level":"error"/);
});
