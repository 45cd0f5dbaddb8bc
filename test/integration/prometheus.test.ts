// A real Prometheus on loopback scrapes a real dispatcher run: every expression of every panel of
// the dashboard returns data, every alert rule loads, and induced faults fire their alerts (an
// endpoint down on 11 webhooks: unhealthy endpoints; a delivery that never ends: a stalled partition).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { defer } from '../helpers/defer.js';
import { createScenario, produceEvents, putSubscription, startDispatcher } from '../helpers/dispatcher.js';
import { freePort } from '../helpers/private-redis.js';
import { serve, startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/wait.js';

const root = path.resolve(import.meta.dirname, '../..');
const available = spawnSync('prometheus', ['--version']).status === 0;
const skip = available ? false : 'prometheus is not installed (apt-get install prometheus; .ci/run does it)';

interface Answer<T> {
  status: string;
  data: T;
}

test('a real Prometheus: every dashboard expression returns data, every rule loads, induced faults fire their alerts', {
  skip,
}, async (t) => {
  const s = await createScenario(t, { partitions: 1 });
  const ok = await startReceiver(t);
  const failing = await startReceiver(t, (_d, res) => res.writeHead(500).end());
  const { url: hangingUrl } = await serve(t, (req) => req.resume()); // never answers
  await putSubscription(s, sampleSubscription({ id: 'wh_ok', url: `${ok.url}/ok`, rateLimitPerSecond: 1000 }));
  for (let i = 0; i < 11; i++) {
    await putSubscription(
      s,
      sampleSubscription({
        id: `wh_down_${i}`,
        url: `${failing.url}/down`,
        metadata: { events: ['TODO_MOVED'], projectIds: ['proj_down'] },
      }),
    );
  }
  await putSubscription(
    s,
    sampleSubscription({
      id: 'wh_hang',
      url: `${hangingUrl}/hang`,
      metadata: { events: ['TODO_CREATED'], projectIds: ['proj_hang'] },
    }),
  );
  const d = await startDispatcher(s, {
    CB_FAILURE_THRESHOLD: '1',
    RETRY_SCHEDULE: '500ms,500ms',
    STALL_TIMEOUT_MS: '3s',
    DELIVERY_TIMEOUT_MS: '60s',
    DELIVERY_HEADERS_TIMEOUT_MS: '60s',
    DELIVERY_BODY_TIMEOUT_MS: '60s',
  });

  // Prometheus of the test's own: scrapes the dispatcher every second and evaluates the project's
  // rules every second, with each `for:` shortened to 0s (the expressions are the same).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prometheus-'));
  defer(t, () => fs.rmSync(dir, { recursive: true, force: true }));
  const rules = fs
    .readFileSync(path.join(root, 'deploy/prometheus/alerts.yml'), 'utf8')
    .replace(/^(\s+)for: \w+$/gm, '$1for: 0s');
  fs.writeFileSync(path.join(dir, 'alerts.yml'), rules);
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, evaluation_interval: 1s }\nrule_files: [alerts.yml]\nscrape_configs:\n  - job_name: blue-webhooks\n    static_configs: [{ targets: ["127.0.0.1:${d.metricsPort}"] }]\n`,
  );
  const port = await freePort();
  const prometheus: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: 'ignore' },
  );
  defer(t, () => {
    prometheus.kill('SIGKILL');
  });
  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const answer = (await (await fetch(`http://127.0.0.1:${port}/api/v1/${pathAndQuery}`)).json()) as Answer<T>;
    assert.equal(answer.status, 'success', pathAndQuery);
    return answer.data;
  };
  await waitFor(() => api('status/runtimeinfo').then(() => true), { what: 'Prometheus to answer', timeoutMs: 30_000 });

  // Traffic: deliveries, a garbage event (events DLQ), failures (retries, open circuits, exhausted
  // deliveries: deliveries DLQ), and a delivery that never ends (a stall).
  await produceEvents(
    s,
    Array.from({ length: 20 }, (_, i) => sampleEvent({ eventId: `ok_${i}`, id: `todo_ok_${i}` })),
  );
  await s.producer.send({ topic: s.topics.events, messages: [{ key: 'junk', value: 'not json' }] });
  await produceEvents(s, [sampleEvent({ eventId: 'down_1', type: 'TODO_MOVED', projectId: 'proj_down' })]);
  await produceEvents(s, [sampleEvent({ eventId: 'hang_1', projectId: 'proj_hang' })]);

  // Rules: all loaded.
  const groups = await api<{ groups: { rules: { name: string; health: string }[] }[] }>('rules');
  const loaded = groups.groups.flatMap((g) => g.rules);
  assert.equal(loaded.length, [...rules.matchAll(/- alert: /g)].length, 'every rule loaded');
  assert.ok(
    loaded.every((r) => r.health !== 'err'),
    JSON.stringify(loaded.filter((r) => r.health === 'err')),
  );

  // Faults: their alerts fire.
  const firing = async () =>
    new Set(
      (await api<{ alerts: { labels: { alertname: string }; state: string }[] }>('alerts')).alerts
        .filter((a) => a.state === 'firing')
        .map((a) => a.labels.alertname),
    );
  for (const alert of ['BlueWebhooksUnhealthyEndpoints', 'BlueWebhooksPartitionStalled']) {
    await waitFor(async () => (await firing()).has(alert), {
      what: `${alert} to fire`,
      timeoutMs: 60_000,
      intervalMs: 500,
    });
  }

  // Dashboard: every expression of every panel returns data.
  const dashboard = JSON.parse(fs.readFileSync(path.join(root, 'deploy/grafana/blue-webhooks.json'), 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  const expressions = dashboard.panels.flatMap((p) =>
    p.targets.map((target) => ({ panel: p.title, expr: target.expr })),
  );
  assert.ok(expressions.length >= 14);
  await waitFor(
    async () => {
      for (const { expr } of expressions) {
        const data = await api<{ result: unknown[] }>(`query?query=${encodeURIComponent(expr)}`);
        if (data.result.length === 0) return false;
      }
      return true;
    },
    { what: 'every panel expression to return data', timeoutMs: 60_000, intervalMs: 1000 },
  ).catch(async (err) => {
    const empty = [];
    for (const { panel, expr } of expressions) {
      if ((await api<{ result: unknown[] }>(`query?query=${encodeURIComponent(expr)}`)).result.length === 0)
        empty.push(`${panel}: ${expr}`);
    }
    throw new Error(`${(err as Error).message}; empty: ${empty.join(' | ')}`);
  });
  t.diagnostic(`${expressions.length} panel expressions with data; firing: ${[...(await firing())].sort().join(', ')}`);
});
