// The HTTP client against real servers on loopback: what each way an endpoint can answer (or not)
// comes back as, and that its deadline holds from the moment a request is asked for, queue included.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { HttpClient, type HttpPostAnswer } from '../../src/delivery/http-client.js';
import { TargetGuard } from '../../src/delivery/target-guard.js';
import { defer } from '../helpers/defer.js';
import { freePort } from '../helpers/private-redis.js';
import { serve } from '../helpers/receiver.js';

function client(t: TestContext, overrides: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}): HttpClient {
  const http = new HttpClient({
    maxConnectionsPerOrigin: 4,
    maxIdleConnections: 100,
    tlsSessionCacheSize: 100,
    connectTimeoutMs: 2000,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    attemptTimeoutMs: 10_000,
    maxResponseBytes: 65_536,
    snippetBytes: 16,
    guard: new TargetGuard(['127.0.0.1/32']),
    ...overrides,
  });
  defer(t, () => http.close());
  return http;
}

const post = (http: HttpClient, url: string) =>
  http.post({ url: new URL(url), headers: { 'content-type': 'application/json' }, body: Buffer.from('{"a":1}') });
const status = (r: HttpPostAnswer) => ('status' in r ? r.status : null);
const errorOf = (r: HttpPostAnswer) => ('error' in r ? (r.error as { name?: string; code?: string }) : null);

test('an answer: its status, its headers and the first bytes of its body; the request as sent', async (t) => {
  let received = '';
  const { url } = await serve(t, (req, res) => {
    req.on('data', (chunk) => {
      received += chunk;
    });
    req.on('end', () => res.writeHead(429, { 'retry-after': '7' }).end('slow down, please, you are sending too much'));
  });
  const r = await post(client(t), `${url}/hook?x=1`);
  assert.equal(status(r), 429);
  assert.equal('status' in r && r.headers['retry-after'], '7');
  assert.equal(r.snippet, 'slow down, pleas', 'the first 16 bytes');
  assert.equal(received, '{"a":1}');
});

test('an endless body: the status stands, and the connection is dropped at the cap instead of drained', async (t) => {
  let closed = false;
  const { url } = await serve(t, (_req, res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    res.on('close', () => {
      closed = true;
    });
    pump();
  });
  const r = await post(client(t, { maxResponseBytes: 256 * 1024 }), url);
  assert.equal(status(r), 200);
  assert.equal(r.snippet, 'xxxxxxxxxxxxxxxx');
  assert.ok(r.durationMs < 5000, `${r.durationMs} ms`);
  for (let i = 0; i < 100 && !closed; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(closed, 'the server saw its connection closed');
});

test('a body cut short after the status line leaves the status standing; a socket closed before it is an error', async (t) => {
  const { url } = await serve(t, (req, res) => {
    if (req.url === '/cut') {
      res.writeHead(503, { 'content-length': '1000' });
      // Cut once the first part is on its way.
      res.write('partial', () => res.socket?.destroy());
    } else req.socket.destroy();
  });
  const http = client(t);
  const cut = await post(http, `${url}/cut`);
  assert.equal(status(cut), 503);
  assert.equal(cut.snippet, 'partial');
  const reset = await post(http, `${url}/reset`);
  assert.equal(status(reset), null);
  assert.match(String(errorOf(reset)?.code), /UND_ERR_SOCKET|ECONNRESET/);
});

test('the overall deadline: a silent endpoint times out, and a request queued behind it is never sent', async (t) => {
  let requests = 0;
  const { url } = await serve(t, () => {
    requests++; // and never answers
  });
  const http = client(t, { maxConnectionsPerOrigin: 1, attemptTimeoutMs: 300 });
  const [first, queued] = await Promise.all([post(http, url), post(http, url)]);
  for (const r of [first, queued]) {
    assert.equal(errorOf(r)?.name, 'TimeoutError');
    assert.ok(r.durationMs >= 290 && r.durationMs < 2000, `${r.durationMs} ms`);
  }
  // The first request's connection is dropped at its deadline; the queued one, past its own
  // deadline by then, must not go out on the next connection.
  const later = await post(http, url);
  assert.equal(errorOf(later)?.name, 'TimeoutError');
  assert.equal(requests, 2, 'the first and the later one reached the server; the abandoned one did not');
});

test('a request that waited in the queue until its deadline is nearly up is not sent: it would only time out', async (t) => {
  let requests = 0;
  const { url } = await serve(t, (_req, res) => {
    requests++;
    // The first answers 285 ms into a 300 ms deadline: the one queued behind it would start with
    // 15 ms left (less than a tenth of it).
    setTimeout(() => res.writeHead(200).end(), 285);
  });
  const http = client(t, { maxConnectionsPerOrigin: 1, attemptTimeoutMs: 300 });
  const [first, queued] = await Promise.all([post(http, url), post(http, url)]);
  t.diagnostic(`first: ${status(first) ?? errorOf(first)?.name}; queued: ${status(queued) ?? errorOf(queued)?.name}`);
  assert.equal(errorOf(queued)?.name, 'TimeoutError');
  assert.equal(requests, 1, 'the queued request never reached the server');
});

test('nothing listening: ECONNREFUSED, no status', async (t) => {
  const r = await post(client(t), `http://127.0.0.1:${await freePort()}/`);
  assert.equal(status(r), null);
  assert.equal(errorOf(r)?.code, 'ECONNREFUSED');
});
