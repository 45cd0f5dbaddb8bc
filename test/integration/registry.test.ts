// Registering the service's schemas against the stack's registry (Apicurio, Confluent API).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Registry } from '../../src/codec/registry.js';
import { stackEnv } from '../helpers/env.js';
import { uniqueName } from '../helpers/kafka.js';

const url = () => stackEnv().SCHEMA_REGISTRY_URL;

async function subjectLevel(subject: string): Promise<string> {
  const r = await fetch(`${url()}/config/${encodeURIComponent(subject)}`);
  return ((await r.json()) as { compatibilityLevel: string }).compatibilityLevel;
}

test('replicas starting together on a new topic all register its schema, under one id', async () => {
  const subject = `${uniqueName('it.registry.together')}-value`;
  // Staggered 2 ms apart: some start while another's first registration is half done.
  const ids = await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, 2 * i));
      return new Registry(url()).register('webhook-status', subject);
    }),
  );
  assert.equal(new Set(ids).size, 1, `one id for all: ${ids.join(',')}`);
});

test("a subject whose compatibility level an operator chose: the schema registers, and the level stays the operator's", async () => {
  const subject = `${uniqueName('it.registry.chosen')}-value`;
  const first = await new Registry(url()).register('webhook-result', subject);
  const put = await fetch(`${url()}/config/${encodeURIComponent(subject)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ compatibility: 'FULL' }),
  });
  assert.equal(put.status, 200, await put.text());
  assert.equal(
    await new Registry(url()).register('webhook-result', subject),
    first,
    'a replica restarting gets the same id',
  );
  assert.equal(await subjectLevel(subject), 'FULL');
});

test('a registry that refuses the schema: a final error naming the subject and what the registry said', async () => {
  const subject = `${uniqueName('it.registry.refused')}-value`;
  await new Registry(url()).register('webhook-result', subject);
  await fetch(`${url()}/config/${encodeURIComponent(subject)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ compatibility: 'FULL' }),
  });
  // Another schema entirely under the same subject is not FULL-compatible with the first.
  await assert.rejects(
    new Registry(url()).register('blue-event', subject),
    (err: Error & { code?: string; retriable?: boolean }) => {
      assert.equal(err.code, 'UNKNOWN_SCHEMA');
      assert.equal(err.retriable, false);
      assert.match(
        err.message,
        new RegExp(`registering blue-event under ${subject.replace(/\./g, '\\.')}: the registry refused it \\(409`),
      );
      return true;
    },
  );
});

test('an unreachable registry is retriable and says so', async () => {
  await assert.rejects(
    new Registry('http://127.0.0.1:9/apis/ccompat/v7').register('webhook-result', 'x-value'),
    (err: Error & { code?: string; retriable?: boolean }) => {
      assert.equal(err.code, 'REGISTRY_UNAVAILABLE');
      assert.equal(err.retriable, true);
      return true;
    },
  );
});

test("a registry URL's user and password go as basic auth, not in the request's URL", async (t) => {
  const seen: { url?: string; authorization?: string }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url, authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/vnd.schemaregistry.v1+json');
    res.end(JSON.stringify({ id: 7 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const id = await new Registry(`http://key%40x:s%3Acret@127.0.0.1:${port}/ccompat/`).register(
    'webhook-result',
    'a-value',
  );
  assert.equal(id, 7);
  assert.deepEqual(seen, [
    {
      url: '/ccompat/subjects/a-value/versions',
      authorization: `Basic ${Buffer.from('key@x:s:cret').toString('base64')}`,
    },
  ]);
});

test('a registry answer that is no id at all (not JSON, a string, a float, huge, empty) is a final error, never an id', async (t) => {
  const answers = [
    '<html>ok</html>',
    '{"id":"7"}',
    '{"id":7.5}',
    '{"id":1e300}',
    '',
    '{"id":null}',
    `{"id":${'9'.repeat(400)}}`,
    '[]',
  ];
  let next = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    res.end(answers[next++]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  for (const answer of answers) {
    await assert.rejects(
      new Registry(`http://127.0.0.1:${port}/`).register('webhook-result', 'a-value'),
      (err: Error & { code?: string; retriable?: boolean }) => err.code === 'UNKNOWN_SCHEMA' && err.retriable === false,
      answer,
    );
  }
});
