// HTTPS to many sparse origins: the TLS session of an origin outlives its idle connections, so
// the next delivery resumes it instead of a full handshake; the guard still decides every address.
import assert from 'node:assert/strict';
import type dns from 'node:dns';
import { test } from 'node:test';
import tls from 'node:tls';
import { HttpClient, type HttpClientOptions } from '../../src/delivery/http-client.js';
import { TargetGuard } from '../../src/delivery/target-guard.js';
import { defer } from '../helpers/defer.js';
import { type Certificates, makeCertificates, startGrid } from '../helpers/tls-grid.js';
import { waitFor } from '../helpers/wait.js';

const IPS = 10;
const certs: Certificates = makeCertificates(
  Array.from({ length: IPS }, (_, i) => `127.0.0.${i + 1}`),
  ['hooks.test'],
);

function client(t: Parameters<typeof defer>[0], overrides: Partial<HttpClientOptions> = {}): HttpClient {
  const http = new HttpClient({
    maxConnectionsPerOrigin: 4,
    maxIdleConnections: 1000,
    tlsSessionCacheSize: 1000,
    connectTimeoutMs: 5000,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    attemptTimeoutMs: 10_000,
    maxResponseBytes: 65_536,
    guard: new TargetGuard(['127.0.0.0/8']),
    secureContext: tls.createSecureContext({ ca: certs.ca }),
    ...overrides,
  });
  defer(t, () => http.close());
  return http;
}

const post = (http: HttpClient, url: string) =>
  http.post({ url: new URL(`${url}/hook`), headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') });
const statusOf = (r: Awaited<ReturnType<typeof post>>) => ('status' in r ? r.status : r.error);

test('50 HTTPS origins whose servers close idle connections: the second round resumes every session', async (t) => {
  const grid = await startGrid({ certs, ips: IPS, portsPerIp: 5, keepAliveMs: 1000 });
  defer(t, () => grid.close());
  const http = client(t);

  const round = async () => {
    const statuses = await Promise.all(grid.origins.map((o) => post(http, o).then(statusOf)));
    assert.deepEqual(new Set(statuses), new Set([204]));
    // Every connection closed by its server, as between two sparse deliveries.
    await waitFor(() => http.connectionStats().open === 0, { what: 'idle connections closed', timeoutMs: 15_000 });
  };
  await round();
  assert.deepEqual(grid.handshakes(), { full: 50, resumed: 0 });
  await round();
  assert.deepEqual(grid.handshakes(), { full: 50, resumed: 50 }, 'the second round resumed every session');
  const stats = http.connectionStats();
  assert.equal(stats.tlsResumedHandshakes, 50);
  assert.equal(stats.tlsSessionsKept, 50, 'one session per origin and address');
});

test('a resumed origin still goes through the guard, and a session is never offered to another origin', async (t) => {
  const grid = await startGrid({ certs, ips: 1, portsPerIp: 1, keepAliveMs: 1000 });
  defer(t, () => grid.close());
  const port = new URL(grid.origins[0]!).port;
  let answer = '127.0.0.1';
  const resolved: string[] = [];
  const resolve = (name: string, _o: dns.LookupAllOptions, cb: (e: null, a: dns.LookupAddress[]) => void) => {
    resolved.push(name);
    cb(null, [{ address: answer, family: 4 }]);
  };
  const http = client(t, { guard: new TargetGuard(['127.0.0.1/32'], { resolve }) });
  const closed = () =>
    waitFor(() => http.connectionStats().open === 0, { what: 'connections closed', timeoutMs: 15_000 });

  assert.equal(statusOf(await post(http, `https://hooks.test:${port}`)), 204);
  await closed();
  assert.equal(statusOf(await post(http, `https://hooks.test:${port}`)), 204);
  await closed();
  assert.deepEqual(grid.handshakes(), { full: 1, resumed: 1 }, 'the host name resumes its session');

  // The name now points at an address the allow-list does not name: refused before connecting,
  // session or not.
  answer = '127.0.0.2';
  const refused = await post(http, `https://hooks.test:${port}`);
  assert.equal('error' in refused && (refused.error as { code?: string }).code, 'TARGET_REFUSED');
  assert.deepEqual(resolved, ['hooks.test', 'hooks.test', 'hooks.test'], 'every connection resolved through the guard');
  assert.deepEqual(grid.handshakes(), { full: 1, resumed: 1 }, 'no connection was made');

  // The same server by its address: another origin, so a full handshake.
  assert.equal(statusOf(await post(http, `https://127.0.0.1:${port}`)), 204);
  assert.deepEqual(grid.handshakes(), { full: 2, resumed: 1 });
});

test('idle connections past MAX_IDLE_CONNECTIONS: those of the origins used least recently are closed', async (t) => {
  const grid = await startGrid({ certs, ips: IPS, portsPerIp: 2, keepAliveMs: 60_000 });
  defer(t, () => grid.close());
  const http = client(t, { maxIdleConnections: 5 });
  for (const origin of grid.origins) assert.equal(statusOf(await post(http, origin)), 204);
  const stats = http.connectionStats();
  assert.equal(stats.idle, 5, 'five idle connections kept');
  assert.equal(stats.closedOverBudget, 15);
  // The five kept are the last five used: they answer on their connection, with no handshake.
  const before = grid.handshakes();
  for (const origin of grid.origins.slice(-5)) assert.equal(statusOf(await post(http, origin)), 204);
  assert.deepEqual(grid.handshakes(), before);
  // The first one's connection was closed: a new one, resumed.
  assert.equal(statusOf(await post(http, grid.origins[0]!)), 204);
  assert.deepEqual(grid.handshakes(), { full: before.full, resumed: before.resumed + 1 });
});

test('a burst to a new origin: one full handshake, and the other connections opened at once resume its session', async (t) => {
  const grid = await startGrid({ certs, ips: 1, portsPerIp: 1, keepAliveMs: 5000 });
  defer(t, () => grid.close());
  const http = client(t);
  const statuses = await Promise.all(Array.from({ length: 12 }, () => post(http, grid.origins[0]!).then(statusOf)));
  assert.deepEqual(new Set(statuses), new Set([204]));
  const { full, resumed } = grid.handshakes();
  assert.equal(full, 1, 'one full handshake');
  assert.ok(resumed >= 1, `the other connections resumed (${resumed})`);
});
