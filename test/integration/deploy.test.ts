// The operator kit: alert rules checked and unit-tested with the real promtool, Kubernetes
// manifests parsed and held against the config loader.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { DEFAULTS } from '../../src/config/config.js';

const root = path.resolve(import.meta.dirname, '../..');
const prometheusDir = path.join(root, 'deploy/prometheus');
const promtool = spawnSync('promtool', ['--version']).status === 0;
const noPromtool = promtool ? false : 'promtool is not installed (apt-get install prometheus; .ci/run does it)';

test('the alert rules load, and each alert fires in its promtool unit test and stays quiet in the other case', {
  skip: noPromtool,
}, () => {
  const check = spawnSync('promtool', ['check', 'rules', 'alerts.yml'], { cwd: prometheusDir, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  const config = spawnSync('promtool', ['check', 'config', 'prometheus.yml'], { cwd: prometheusDir, encoding: 'utf8' });
  assert.equal(config.status, 0, config.stdout + config.stderr);
  const unit = spawnSync('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: prometheusDir, encoding: 'utf8' });
  assert.equal(unit.status, 0, unit.stdout + unit.stderr);
  // Every alert has a test that expects it, and a runbook section.
  const rules = fs.readFileSync(path.join(prometheusDir, 'alerts.yml'), 'utf8');
  const tests = fs.readFileSync(path.join(prometheusDir, 'alerts.test.yml'), 'utf8');
  const runbook = fs.readFileSync(path.join(root, 'docs/runbook.md'), 'utf8');
  const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
  assert.ok(alerts.length >= 10);
  for (const alert of alerts) {
    assert.match(
      tests,
      new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`),
      `${alert} is expected to fire in a test`,
    );
    assert.match(
      tests,
      new RegExp(`alertname: ${alert}, exp_alerts: \\[\\]`),
      `${alert} is expected not to fire in a test`,
    );
    assert.match(runbook, new RegExp(`^## ${alert}$`, 'm'), `${alert} has a runbook section`);
  }
});

const manifests = fs
  .readdirSync(path.join(root, 'deploy/k8s'))
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) =>
    parseAllDocuments(fs.readFileSync(path.join(root, 'deploy/k8s', f), 'utf8')).map((d) => ({ file: f, doc: d })),
  );

function manifest(kind: string) {
  const found = manifests.find((m) => m.doc.toJS()?.kind === kind);
  assert.ok(found, `a ${kind} in deploy/k8s`);
  return found.doc.toJS();
}

test('the Kubernetes manifests parse, and every variable they set is one the service reads', () => {
  for (const m of manifests) assert.deepEqual(m.doc.errors, [], m.file);
  const known = new Set(Object.keys(DEFAULTS));
  const configMap = manifest('ConfigMap');
  for (const name of Object.keys(configMap.data))
    assert.ok(known.has(name), `ConfigMap key ${name} is not a config variable`);
  const container = manifest('Deployment').spec.template.spec.containers[0];
  for (const { name } of container.env) assert.ok(known.has(name), `env ${name} is not a config variable`);
});

test('the Deployment probes /healthz and /readyz, runs as non-root, and outlives SHUTDOWN_GRACE_MS; KEDA stays within the partitions', () => {
  const configMap = manifest('ConfigMap').data;
  const pod = manifest('Deployment').spec.template.spec;
  const container = pod.containers[0];
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
  assert.equal(String(container.ports[0].containerPort), configMap.METRICS_PORT ?? DEFAULTS.METRICS_PORT);
  assert.ok(
    container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory,
  );
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  const graceMs = Number(configMap.SHUTDOWN_GRACE_MS ?? DEFAULTS.SHUTDOWN_GRACE_MS);
  assert.ok(pod.terminationGracePeriodSeconds * 1000 > graceMs + 5000, 'time to drain, then leave the groups');
  assert.equal(manifest('PodDisruptionBudget').spec.maxUnavailable, 1);
  const scaled = manifest('ScaledObject').spec;
  assert.ok(
    scaled.maxReplicaCount <= Number(configMap.TOPIC_PARTITIONS ?? DEFAULTS.TOPIC_PARTITIONS),
    'no more replicas than partitions',
  );
  assert.ok(scaled.cooldownPeriod >= 300, 'a cool-down long enough to avoid rebalance storms');
  const trigger = scaled.triggers[0].metadata;
  assert.equal(trigger.consumerGroup, configMap.CONSUMER_GROUP);
  assert.equal(trigger.topic, configMap.EVENTS_TOPIC);
});

test('the image starts the service as `npm start` does, with the same Node flags (the bench runs those too)', () => {
  const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? 'null') as string[] | null;
  const start = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } })
    .scripts.start;
  assert.deepEqual(cmd, start.split(/\s+/));
  assert.ok(
    cmd.some((arg) => arg.startsWith('--max-semi-space-size=')),
    'the young generation is sized (see docs/performance.md)',
  );
});

test('the owner API has a Service on the port the pods serve it, and its token comes from a Secret', () => {
  const configMap = manifest('ConfigMap').data;
  const container = manifest('Deployment').spec.template.spec.containers[0];
  const api = container.ports.find((p: { name: string }) => p.name === 'api');
  assert.equal(String(api.containerPort), configMap.API_PORT ?? DEFAULTS.API_PORT);
  const token = container.env.find((e: { name: string }) => e.name === 'API_TOKEN');
  assert.equal(token.valueFrom.secretKeyRef.key, 'API_TOKEN');
  assert.ok(!('API_TOKEN' in configMap), 'never in the ConfigMap');
  const service = manifest('Service').spec;
  assert.equal(service.ports[0].targetPort, 'api');
  assert.deepEqual(service.selector, manifest('Deployment').spec.selector.matchLabels);
});
