// The README's main command: `npm run demo` delivers sample events whose signatures verify.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { stackEnv } from '../helpers/env.js';

test('npm run demo delivers sample events with valid signatures, then stops cleanly', async () => {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../../src/demo/run.ts')], {
    env: { ...process.env, ...stackEnv(), DEMO_EVENTS: '2', METRICS_PORT: '0', REDIS_KEY_PREFIX: `test:demo:${process.pid}:` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (c) => {
    out += c;
  });
  proc.stderr.on('data', (c) => {
    out += c;
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 90_000);
  const code = await new Promise((r) => proc.on('exit', r));
  clearTimeout(timer);
  assert.equal(code, 0, out);
  const received = out.split('\n').filter((l) => l.includes('[demo] received'));
  assert.ok(received.length >= 2, out);
  for (const l of received) assert.match(l, /X-Blue-Signature valid, webhook-signature valid/);
});
