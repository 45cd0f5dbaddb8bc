// The stack's Maven fetch: it must restore a distribution that is missing, whatever Maven
// remembers of an earlier unpack. (A stale unpack marker once left the registry folder empty on
// a machine whose Maven cache was warm, and the registry failed to start.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { defer } from '../helpers/defer.js';

const root = path.resolve(import.meta.dirname, '../..');

function fetchInto(stackDir: string): string {
  const r = spawnSync(process.execPath, [path.join(root, 'stack', 'stack.mjs'), 'fetch'], {
    cwd: root,
    env: { ...process.env, STACK_DIR: stackDir },
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(r.status, 0, `stack fetch failed:\n${r.stdout}${r.stderr}`);
  return r.stderr;
}

const runnerJar = (stackDir: string) =>
  fs
    .readdirSync(stackDir)
    .flatMap((d) =>
      d.startsWith('apicurio-')
        ? fs.readdirSync(path.join(stackDir, d)).filter((f) => f.endsWith('-runner.jar') || f === 'quarkus-run.jar')
        : [],
    );

test('fetch fills an empty stack folder, and fetches again what was deleted after a successful fetch', async (t) => {
  const stackDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blue-stack-'));
  defer(t, () => fs.rmSync(stackDir, { recursive: true, force: true }));

  fetchInto(stackDir);
  const apicurioDirs = fs.readdirSync(stackDir).filter((d) => d.startsWith('apicurio-'));
  assert.equal(apicurioDirs.length, 1, `one registry distribution in ${fs.readdirSync(stackDir).join(', ')}`);
  assert.equal(runnerJar(stackDir).length, 1, 'the registry runner jar is there');
  assert.ok(
    fs.readdirSync(stackDir).some((d) => d.startsWith('kafka-')),
    'the Kafka libs are there',
  );

  // Already fetched: nothing to do, and it says nothing.
  assert.doesNotMatch(fetchInto(stackDir), /fetching/);

  fs.rmSync(path.join(stackDir, apicurioDirs[0]!), { recursive: true });
  assert.match(fetchInto(stackDir), /fetched in/);
  assert.equal(runnerJar(stackDir).length, 1, 'the registry runner jar is back');
  assert.deepEqual(
    fs.readdirSync(root).filter((f) => f.includes('${') || f === 'target'),
    [],
    'Maven leaves nothing in the repository root',
  );
});
