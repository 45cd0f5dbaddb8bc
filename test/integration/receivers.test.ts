// The receiver examples in examples/receivers/, run as they are against real deliveries, during a
// secret rotation: each verifies every delivery, with the current secret or the previous one.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { defer } from '../helpers/defer.js';
import { createScenario, produceEvents, putSubscription, startDispatcher } from '../helpers/dispatcher.js';
import { startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

const examples = path.resolve(import.meta.dirname, '../../examples/receivers');
const CURRENT = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const PREVIOUS = 'whsec_c2VjcmV0LWJlZm9yZS10aGUtcm90YXRpb24=';

/** Runs an example receiver on a free loopback port; collects the JSON lines it prints. */
async function runExample(t: TestContext, file: string, secret: string) {
  const proc: ChildProcess = spawn(process.execPath, [path.join(examples, file)], {
    env: { PATH: process.env.PATH ?? '', WEBHOOK_SECRET: secret, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  defer(t, () => {
    proc.kill();
  });
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  proc.stdout!.on('data', (c: Buffer) => {
    buffered += c.toString('utf8');
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const p of parts) lines.push(JSON.parse(p));
  });
  const { listening } = await waitFor(() => lines.find((l) => 'listening' in l) as { listening: number } | undefined, {
    what: `${file} to listen`,
  });
  return {
    url: `http://127.0.0.1:${listening}/hook`,
    verified: () => lines.filter((l) => l.verified === true).length,
    refused: () => lines.filter((l) => l.verified === false).length,
    /** Each refusal, with its reason. */
    refusals: () => lines.filter((l) => l.verified === false),
  };
}

test('the example receivers verify real deliveries during a secret rotation, with either secret', async (t) => {
  const s = await createScenario(t);
  const receivers = {
    standardCurrent: await runExample(t, 'standardwebhooks.mjs', CURRENT),
    standardPrevious: await runExample(t, 'standardwebhooks.mjs', PREVIOUS),
    nodeCrypto: await runExample(t, 'node-crypto.mjs', CURRENT),
  };
  const recorder = await startReceiver(t); // keeps bodies and headers for the openssl check
  const rotation = {
    secret: CURRENT,
    previousSecret: PREVIOUS,
    previousSecretExpiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  };
  for (const [id, url] of [
    ...Object.entries(receivers).map(([id, r]) => [id, r.url]),
    ['recorder', `${recorder.url}/hook`],
  ] as [string, string][]) {
    await putSubscription(s, sampleSubscription({ id, url, ...rotation }), 'avro');
  }
  await startDispatcher(s);
  const N = 5;
  await produceEvents(
    s,
    Array.from({ length: N }, (_, i) => sampleEvent({ eventId: `rot_${i}` })),
  );
  await waitFor(
    () => Object.values(receivers).every((r) => r.verified() + r.refused() >= N) && recorder.deliveries.length >= N,
    { what: 'every receiver to get every delivery' },
  );
  for (const [name, r] of Object.entries(receivers)) {
    assert.equal(r.refused(), 0, `${name} refused a delivery: ${JSON.stringify(r.refusals())}`);
    assert.equal(r.verified(), N, `${name} verified every delivery`);
  }
  // The openssl check, on the recorded deliveries: valid as sent, refused when a byte changes.
  for (const d of recorder.deliveries) {
    const check = (body: string) =>
      spawnSync('sh', [path.join(examples, 'verify-openssl.sh'), CURRENT, String(d.headers['x-blue-signature'])], {
        input: body,
      }).status;
    assert.equal(check(d.body), 0, 'openssl verifies the delivery');
    assert.equal(check(`${d.body} `), 1, 'openssl refuses a changed body');
  }
});

test('after the rotation ends, a receiver still on the previous secret refuses deliveries', async (t) => {
  const s = await createScenario(t);
  const stale = await runExample(t, 'standardwebhooks.mjs', PREVIOUS);
  const fresh = await runExample(t, 'standardwebhooks.mjs', CURRENT);
  const ended = {
    secret: CURRENT,
    previousSecret: PREVIOUS,
    previousSecretExpiresAt: new Date(Date.now() - 1000).toISOString(),
  };
  await putSubscription(s, sampleSubscription({ id: 'stale', url: stale.url, ...ended }));
  await putSubscription(s, sampleSubscription({ id: 'fresh', url: fresh.url, ...ended }));
  await startDispatcher(s, { RETRY_SCHEDULE: 'none' });
  await produceEvents(s, [sampleEvent({ eventId: 'after_rotation' })]);
  await waitFor(() => stale.refused() + fresh.verified() >= 2, { what: 'both receivers to answer' });
  assert.deepEqual([stale.verified(), stale.refused(), fresh.verified()], [0, 1, 1]);
});
