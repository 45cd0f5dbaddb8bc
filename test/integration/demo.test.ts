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
});
