// SSRF protection through the running dispatcher: refused targets get a final outcome and never a request.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import type { WebhookResult } from '../../src/results/result.js';
import {
  collectTopic,
  createScenario,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { serve } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

async function listen(t: import('node:test').TestContext, host: string) {
  const hits: string[] = [];
  const { port } = await serve(
    t,
    (req, res) => {
      hits.push(req.url ?? '');
      req.resume();
      res.writeHead(200).end();
    },
    host,
  );
  return { port, hits };
}

test('the allow-list lets through exactly what it names; every other internal spelling is refused without a request', async (t) => {
  const s = await createScenario(t);
  const refusedHost = await listen(t, '127.0.0.1');
  const allowedHost = await listen(t, '127.0.0.2');
  const a = refusedHost.port;
  const targets: Record<string, string> = {
    allowed: `http://127.0.0.2:${allowedHost.port}/ok`,
    loopback: `http://127.0.0.1:${a}/x`,
    name: `http://localhost:${a}/x`, // a DNS name that resolves to 127.0.0.1
    decimal: `http://2130706433:${a}/x`,
    octal: `http://0177.0.0.1:${a}/x`,
    hex: `http://0x7f.0.0.1:${a}/x`,
    mapped: `http://[::ffff:127.0.0.1]:${a}/x`,
    v6loopback: `http://[::1]:${a}/x`,
    metadata: 'http://169.254.169.254/latest/meta-data/',
  };
  for (const [id, url] of Object.entries(targets)) await putSubscription(s, sampleSubscription({ id, url }));
  const out = await collectTopic(s, s.topics.results, (v) => s.registry.decode(v!) as Promise<WebhookResult>);
  await startDispatcher(s, { DELIVERY_ALLOWLIST: '127.0.0.2/32' });
  await produceEvents(s, [sampleEvent({ eventId: 'evt_ssrf' })]);
  await waitFor(() => out.length === Object.keys(targets).length, { what: 'one outcome per target' });

  for (const r of out) {
    if (r.webhookId === 'allowed') {
      assert.equal(r.outcome, 'DELIVERED');
    } else {
      assert.deepEqual(
        [r.webhookId, r.outcome, r.reason, r.error?.code],
        [r.webhookId, 'FAILED', 'refused', 'TARGET_REFUSED'],
      );
    }
  }
  assert.deepEqual(allowedHost.hits, ['/ok']);
  assert.deepEqual(refusedHost.hits, [], 'no request ever reached a refused target');
});
