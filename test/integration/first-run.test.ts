// What a newcomer sees: the README's main command, `npm run demo`, in a fresh copy of the
// repository with an empty STACK_DIR, so this first run fetches the stack's jars itself. It once
// failed exactly there (Maven's output on the stdout the demo parsed) while every later run worked.
// The copy holds the tracked files as they are in the work tree; node_modules is linked, as
// `npm ci` would only fetch again what is here. Its stack gets ports of its own, beside the one
// the other tests use, and is stopped at the end.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { defer } from '../helpers/defer.js';
import { stackEnv } from '../helpers/env.js';
import { freePort } from '../helpers/private-redis.js';
import { runCommand } from '../helpers/run-script.js';

const root = path.resolve(import.meta.dirname, '../..');

function freshCopy(into: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: root,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((file) => file && fs.existsSync(path.join(root, file)));
  for (const file of files) {
    fs.mkdirSync(path.dirname(path.join(into, file)), { recursive: true });
    fs.copyFileSync(path.join(root, file), path.join(into, file));
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(into, 'node_modules'));
}

test('npm run demo works the first time, in a fresh copy with an empty STACK_DIR', async (t) => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'blue-first-run-'));
  const clone = path.join(scratch, 'blue-webhooks');
  const stackDir = path.join(scratch, 'stack');
  freshCopy(clone);
  const env = {
    ...process.env,
    STACK_DIR: stackDir,
    KAFKA_BROKERS: `127.0.0.1:${await freePort()}`,
    SCHEMA_REGISTRY_URL: `http://127.0.0.1:${await freePort()}/apis/ccompat/v7`,
    // The shared Redis, under the demo's prefix for this new Kafka cluster.
    REDIS_URL: stackEnv().REDIS_URL,
    DEMO_EVENTS: '2',
    METRICS_PORT: '0',
  };
  defer(t, async () => {
    await runCommand('npm', ['run', '--silent', 'stack:down'], { env, cwd: clone, timeoutMs: 60_000 });
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  const { code, output } = await runCommand('npm', ['run', '--silent', 'demo'], {
    env,
    cwd: clone,
    timeoutMs: 420_000,
  });
  assert.equal(code, 0, output);
  assert.ok(
    fs.readdirSync(stackDir).some((dir) => dir.startsWith('kafka-')),
    'this run fetched the Kafka jars into the empty STACK_DIR',
  );
  assert.match(output, /\[stack\] fetch/, 'the fetch is announced on stderr');
  assert.equal(output.match(/\[demo\] received .*X-Blue-Signature valid, webhook-signature valid/g)?.length, 2, output);
  assert.match(output, /outcome on blue\.webhook-results: DELIVERED/);
  assert.doesNotMatch(output, /"level":"error"|TypeError/, 'no error line');
  assert.equal(stripVTControlCharacters(output), output, 'no terminal escape codes');
});
