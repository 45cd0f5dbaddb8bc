// The delivery log and the owner API on the real stack: what an endpoint's owner reads about its
// deliveries, how soon, within which bounds, and what bad requests get.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { test } from 'node:test';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { sampleEvent, sampleSubscription } from '../../src/demo/sample-data.js';
import { Metrics } from '../../src/metrics/index.js';
import { DeliveryLog, type LoggedAttempt, startOwnerApi, unloggable } from '../../src/owner/index.js';
import type { WebhookResult } from '../../src/results/index.js';
import { bucketOf, bucketPrefix, createLogger } from '../../src/shared/index.js';
import { defer } from '../helpers/defer.js';
import {
  collectTopic,
  createScenario,
  parseMetrics,
  produceEvents,
  putSubscription,
  startDispatcher,
} from '../helpers/dispatcher.js';
import { openApiChecker } from '../helpers/openapi.js';
import { startReceiver } from '../helpers/receiver.js';
import { deleteKeys, serviceRedis, testRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/** An answer of the API, as the tests read it (docs/openapi.yaml has the contract). */
interface Answer {
  deliveryId?: string;
  data: (LoggedAttempt & { webhookId?: string })[];
  nextCursor: string | null;
  error?: string;
  message?: string;
}

const TOKEN = `tok_${randomBytes(24).toString('hex')}`;
const openapi = openApiChecker();
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

/** The documented route a request path is on, or null. */
function templateOf(path: string): string | null {
  const p = path.split('?')[0]!.split('/');
  if (p.length === 5 && p[1] === 'v1' && p[2] === 'webhooks') return `/v1/webhooks/{webhookId}/${p[4]}`;
  if (p.length === 4 && p[1] === 'v1' && p[2] === 'deliveries') return '/v1/deliveries/{deliveryId}';
  if (p.length === 5 && p[1] === 'v1' && p[2] === 'deliveries') return `/v1/deliveries/{deliveryId}/${p[4]}`;
  return null;
}

test('attempts reach the owner API within a second of their outcome, newest first, a page at a time, at most DELIVERY_LOG_MAX_PER_WEBHOOK; a delivery reads whole; bad requests get a 400 and a reason', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  rx.respond = (d, res) => {
    res.statusCode = d.path === '/bad' ? 400 : 200;
    res.setHeader('content-type', 'application/json');
    res.end(`{"ok":${d.path !== '/bad'},"token":"s3cr3t-in-the-answer","note":"caf\u00e9"}`);
  };
  await putSubscription(s, sampleSubscription({ id: 'wh_ok', url: `${rx.url}/ok`, secret: SECRET }));
  await putSubscription(s, sampleSubscription({ id: 'wh_bad', url: `${rx.url}/bad` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_off', url: `${rx.url}/off`, enabled: false }));
  const results = await collectTopic(s, s.topics.results, (v) => s.registry.decode(v!) as Promise<WebhookResult>);
  const seenAt = new Map<string, number>();
  const d = await startDispatcher(s, {
    API_TOKEN: TOKEN,
    API_PORT: '0',
    API_HOST: '127.0.0.1',
    API_RATE_LIMIT_PER_SECOND: '200',
    DELIVERY_LOG_MAX_PER_WEBHOOK: '5',
  });
  const apiPort = (await waitFor(() => d.logs.find((l) => l.msg === 'owner API listening')?.apiPort, {
    what: 'the API to say where it listens',
  })) as number;
  const api = async (path: string, init: RequestInit = {}, token: string | null = TOKEN) => {
    const res = await fetch(`http://127.0.0.1:${apiPort}${path}`, {
      ...init,
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
    });
    assert.equal(res.headers.get('content-type'), 'application/json', `${path}: JSON`);
    const body = (await res.json()) as Answer;
    openapi.check(templateOf(path), init.method ?? 'GET', res.status, body);
    return { status: res.status, headers: res.headers, body };
  };

  await produceEvents(
    s,
    Array.from({ length: 8 }, (_, i) => sampleEvent({ eventId: `e${i}` })),
  );
  await waitFor(
    () => {
      for (const r of results) if (!seenAt.has(r.deliveryId)) seenAt.set(r.deliveryId, Date.now());
      return results.length === 16;
    },
    { what: '16 outcomes on the results topic' },
  );
  // Within a second of its outcome reaching the topic, the newest attempt is in the log.
  const newest = results.filter((r) => r.webhookId === 'wh_ok').at(-1)!;
  await waitFor(
    async () => (await api('/v1/webhooks/wh_ok/attempts?limit=1')).body.data[0]?.deliveryId === newest.deliveryId,
    {
      what: 'the newest attempt in the log',
      timeoutMs: Math.max(200, 1000 - (Date.now() - seenAt.get(newest.deliveryId)!)),
    },
  );

  // Pages of 2, newest first, to the end: the last 5 attempts (the count bound), each once.
  const pages: Answer['data'][] = [];
  let cursor: string | null = null;
  do {
    const { status, body } = await api(`/v1/webhooks/wh_ok/attempts?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(status, 200);
    pages.push(body.data);
    cursor = body.nextCursor;
  } while (cursor !== null && pages.length < 10);
  const seen = pages.flat();
  assert.deepEqual(
    pages.map((p) => p.length),
    [2, 2, 1],
  );
  const okResults = results.filter((r) => r.webhookId === 'wh_ok');
  assert.deepEqual(
    seen.map((a) => a.deliveryId),
    okResults
      .slice(-5)
      .map((r) => r.deliveryId)
      .reverse(),
    'the last five, newest first',
  );
  const first = seen[0]!;
  assert.equal(first.state, 'DELIVERED');
  assert.equal(first.httpStatus, 200);
  assert.equal(first.attempt, 1);
  assert.equal(first.eventType, 'TODO_CREATED');
  assert.match(first.at, /^\d{4}-\d\d-\d\dT/);
  assert.equal(first.responseSnippet, '{"ok":true,"token":"[redacted]","note":"caf\u00e9"}', 'redacted, UTF-8 kept');

  // One state only.
  const failed = await api('/v1/webhooks/wh_bad/attempts?state=FAILED&limit=100');
  assert.equal(failed.body.data.length, 5);
  assert.ok(failed.body.data.every((a) => a.state === 'FAILED' && a.reason === 'final_status'));
  assert.deepEqual((await api('/v1/webhooks/wh_bad/attempts?state=DELIVERED')).body, { data: [], nextCursor: null });
  assert.deepEqual((await api('/v1/webhooks/nobody/attempts')).body, { data: [], nextCursor: null });

  // A delivery, whole.
  const one = await api(`/v1/deliveries/${encodeURIComponent(first.deliveryId)}`);
  assert.equal(one.status, 200);
  assert.deepEqual(
    one.body.data.map((a) => [a.webhookId, a.attempt, a.state]),
    [['wh_ok', 1, 'DELIVERED']],
  );
  assert.equal((await api('/v1/deliveries/msg_unknown')).status, 404);

  // Without the token, with another, or with it misspelt: 401 and no detail.
  for (const token of [null, 'wrong', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
    const r = await api('/v1/webhooks/wh_ok/attempts', {}, token);
    assert.equal(r.status, 401, String(token));
    assert.deepEqual(r.body, { error: 'unauthorized' });
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
  }

  // Each bad input: a 400 that says why, never a 500.
  const bad: [string, RegExp][] = [
    ['/v1/webhooks/wh_ok/attempts?cursor=abc', /cursor/],
    ['/v1/webhooks/wh_ok/attempts?cursor=1-1%00', /cursor/],
    ['/v1/webhooks/wh_ok/attempts?limit=10000', /limit/],
    ['/v1/webhooks/wh_ok/attempts?limit=0', /limit/],
    ['/v1/webhooks/wh_ok/attempts?limit=-1', /limit/],
    ['/v1/webhooks/wh_ok/attempts?limit=1e2', /limit/],
    ['/v1/webhooks/wh_ok/attempts?limit=1&limit=2', /twice/],
    ['/v1/webhooks/wh_ok/attempts?state=NOPE', /state/],
    ['/v1/webhooks/wh_ok/attempts?state=%FF', /state/],
    ['/v1/webhooks/wh_ok/attempts?color=red', /unknown parameter/],
    [`/v1/webhooks/${'a'.repeat(10_240)}/attempts`, /1 to 256 characters/],
    ['/v1/webhooks/%FF/attempts', /percent-encoded UTF-8/],
    ['/v1/webhooks/%ED%A0%80/attempts', /percent-encoded UTF-8/],
    ['/v1/webhooks/%/attempts', /percent-encoded UTF-8/],
    [`/v1/deliveries/${'d'.repeat(10_240)}`, /1 to 256 characters/],
    ['/v1/deliveries/%C0%AF', /percent-encoded UTF-8/],
    ['/v1/deliveries/x?limit=1', /unknown parameter/],
  ];
  for (const [path, reason] of bad) {
    const r = await api(path);
    assert.equal(r.status, 400, path.slice(0, 60));
    assert.equal(r.body.error, 'invalid_request');
    assert.match(r.body.message ?? '', reason, path.slice(0, 60));
  }
  assert.equal((await api('/v1/nothing')).status, 404);
  assert.equal((await api('/v1/webhooks/wh_ok/attempts', { method: 'DELETE' })).status, 405);

  // A test event: signed, through the normal path, in the log like any attempt.
  const test = await api('/v1/webhooks/wh_ok/test', { method: 'POST' });
  assert.equal(test.status, 202);
  const testId = test.body.deliveryId!;
  const tested = await waitFor(() => rx.deliveries.find((r) => r.headers['webhook-id'] === testId), {
    what: 'the test event at the endpoint',
  });
  assert.equal(tested.headers['x-blue-event'], 'WEBHOOK_TEST');
  assert.doesNotThrow(() => new Webhook(SECRET).verify(tested.body, tested.headers as Record<string, string>));
  assert.equal((JSON.parse(tested.body) as { event: string }).event, 'WEBHOOK_TEST');
  await waitFor(async () => (await api(`/v1/deliveries/${testId}`)).status === 200, { what: 'the test in the log' });
  assert.equal((await api('/v1/webhooks/nobody/test', { method: 'POST' })).status, 404);
  assert.equal((await api('/v1/webhooks/wh_off/test', { method: 'POST' })).status, 409);
  assert.equal((await api('/v1/webhooks/wh_ok/test')).status, 405);

  // A resend: the same delivery id, the event read back from Kafka, the next attempt number.
  const again = await api(`/v1/deliveries/${encodeURIComponent(first.deliveryId)}/resend`, { method: 'POST' });
  assert.equal(again.status, 202);
  const resent = await waitFor(
    () =>
      rx.deliveries.find((r) => r.headers['webhook-id'] === first.deliveryId && r.headers['x-blue-attempt'] === '2'),
    { what: 'the resent delivery' },
  );
  const original = rx.deliveries.find((r) => r.headers['webhook-id'] === first.deliveryId)!;
  assert.equal(JSON.parse(resent.body).currentValue.id, JSON.parse(original.body).currentValue.id);
  assert.doesNotThrow(() => new Webhook(SECRET).verify(resent.body, resent.headers as Record<string, string>));
  assert.equal((await api('/v1/deliveries/msg_unknown/resend', { method: 'POST' })).status, 404);
  // Once the topic no longer has the event: 410.
  const ends = await s.admin.fetchTopicOffsets(s.topics.events);
  await s.admin.deleteTopicRecords({
    topic: s.topics.events,
    partitions: ends.map((p) => ({ partition: p.partition, offset: p.high })),
  });
  const gone = await api(`/v1/deliveries/${encodeURIComponent(seen[1]!.deliveryId)}/resend`, { method: 'POST' });
  assert.equal(gone.status, 410);
  assert.equal(gone.body.error, 'gone');

  // Over the rate: 429 with Retry-After.
  const burst = await Promise.all(Array.from({ length: 400 }, () => api('/v1/webhooks/wh_ok/attempts?limit=1')));
  const limited = burst.filter((r) => r.status === 429);
  assert.ok(limited.length > 0 && burst.every((r) => r.status === 200 || r.status === 429));
  assert.ok(Number(limited[0]!.headers.get('retry-after')) >= 1);

  const m = parseMetrics(await d.metrics());
  assert.equal(m.get('blue_webhooks_api_requests_total{route="attempts",status="400"}'), 14);
  assert.equal(m.get('blue_webhooks_api_requests_total{route="unknown",status="401"}'), 4);
  // 16 from the events, the test event's and the resend's.
  await waitFor(async () => parseMetrics(await d.metrics()).get('blue_webhooks_delivery_log_appended_total') === 18, {
    what: '18 attempts logged',
  });
  assert.ok(
    !d.logs
      .map((l) => JSON.stringify(l))
      .join('\n')
      .includes(TOKEN),
    'the token is never logged',
  );
});

/** A first attempt of delivery `msg_<i>` to a webhook, delivered, as the results topic holds it. */
function attemptResult(webhookId: string, i: number, timestamp: number): WebhookResult {
  return {
    deliveryId: `msg_${i}`,
    eventId: `e${i}`,
    webhookId,
    eventType: 'TODO_CREATED',
    projectId: 'p',
    attempt: 1,
    outcome: 'DELIVERED',
    httpStatus: 200,
    durationMs: 3,
    error: null,
    timestamp,
    reason: null,
    nextAttemptAt: null,
    responseSnippet: null,
    source: null,
  };
}

test('the log keeps attempts younger than DELIVERY_LOG_RETENTION and at most DELIVERY_LOG_MAX_PER_WEBHOOK, whatever order replicas logged them in', async (t) => {
  const { redis, prefix } = testRedis(t);
  const log = new DeliveryLog(redis, prefix, { maxPerWebhook: 100, retentionMs: 3_600_000 });
  const now = Date.now();
  const result = (i: number, timestamp: number) => attemptResult('wh', i, timestamp);
  // Two hours old, then 150 fresh ones, one of them timed a minute before the one logged before it.
  const old = result(0, now - 7_200_000);
  assert.equal(log.expired(old), true, 'the consumer passes it over');
  await log.append([old]);
  await log.append(Array.from({ length: 150 }, (_, i) => result(i + 1, now - 1000 + i - (i === 70 ? 60_000 : 0))));
  const all: string[] = [];
  let cursor: string | null = null;
  do {
    const page: Awaited<ReturnType<DeliveryLog['attempts']>> = await log.attempts('wh', {
      limit: 30,
      cursor,
      state: null,
    });
    all.push(...page.data.map((a) => a.deliveryId));
    cursor = page.nextCursor;
  } while (cursor !== null);
  assert.deepEqual(
    all,
    Array.from({ length: 100 }, (_, i) => `msg_${150 - i}`),
    'the newest 100, newest first; none of the old one',
  );
  assert.deepEqual(await log.delivery('msg_0'), [], 'trimmed away, it reads as nothing');
  assert.equal((await log.delivery('msg_150'))[0]?.eventId, 'e150');

  // Under the count bound, age alone trims: the old attempt is gone from Redis, not only hidden.
  const roomy = new DeliveryLog(redis, prefix, { maxPerWebhook: 1000, retentionMs: 3_600_000 });
  const other = (r: WebhookResult) => ({ ...r, webhookId: 'wh2' });
  await roomy.append([other(old)]);
  await roomy.append([1, 2, 3].map((i) => other(result(i, now + i))));
  const page = await roomy.attempts('wh2', { limit: 100, cursor: null, state: null });
  assert.deepEqual(
    page.data.map((a) => a.deliveryId),
    ['msg_3', 'msg_2', 'msg_1'],
  );
  assert.equal(await redis.xlen(`${bucketPrefix(prefix, bucketOf('wh2'))}dlog:w:wh2`), 3);
});

test('the log run apart: a replica with DELIVERY_LOG=only logs and answers, and delivers nothing; the one that delivers (DELIVERY_LOG=off) logs nothing', async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  await putSubscription(s, sampleSubscription({ id: 'wh', url: `${rx.url}/in` }));
  const delivering = await startDispatcher(s, { DELIVERY_LOG: 'off' });
  const logging = await startDispatcher(s, {
    DELIVERY_LOG: 'only',
    API_TOKEN: TOKEN,
    API_PORT: '0',
    API_HOST: '127.0.0.1',
  });
  const apiPort = (await waitFor(() => logging.logs.find((l) => l.msg === 'owner API listening')?.apiPort, {
    what: 'the API to say where it listens',
  })) as number;
  await produceEvents(s, [sampleEvent({ eventId: 'a' }), sampleEvent({ eventId: 'b' })]);
  const page = await waitFor(
    async () => {
      const res = await fetch(`http://127.0.0.1:${apiPort}/v1/webhooks/wh/attempts`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const body = (await res.json()) as { data: unknown[] };
      openapi.check('/v1/webhooks/{webhookId}/attempts', 'GET', res.status, body);
      return body.data.length === 2 && body;
    },
    { what: 'both attempts in the log' },
  );
  assert.equal(page.data.length, 2);
  assert.equal(rx.deliveries.length, 2, 'each event delivered once, by the replica that delivers');
  const [off, only] = [parseMetrics(await delivering.metrics()), parseMetrics(await logging.metrics())];
  assert.equal(off.get('blue_webhooks_delivery_log_appended_total'), 0);
  assert.equal(only.get('blue_webhooks_delivery_log_appended_total'), 2);
  assert.equal(only.get('blue_webhooks_events_consumed_total') ?? 0, 0);
  assert.equal((await logging.readyz()).status, 200);
});

test('any path and query, however hostile, gets a JSON answer that is not a 500 (fast-check against a real server and Redis)', async (t) => {
  const redis = serviceRedis();
  const prefix = `test:${randomBytes(6).toString('hex')}:`;
  const metrics = new Metrics({ defaultMetrics: false });
  const server = await startOwnerApi({
    port: 0,
    host: '127.0.0.1',
    token: TOKEN,
    ratePerSecond: 1_000_000,
    log: new DeliveryLog(redis, prefix, { maxPerWebhook: 10, retentionMs: 3_600_000 }),
    actions: null,
    metrics,
    logger: createLogger({ level: 'error' }),
  });
  defer(t, async () => {
    await server.close();
    await deleteKeys(redis, prefix);
    redis.disconnect();
  });
  const get = (rawPath: string) =>
    new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: server.port, path: rawPath, headers: { authorization: `Bearer ${TOKEN}` } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  // Pieces of paths: the routes' own words, ids, percent escapes good and bad, odd characters.
  const piece = fc.oneof(
    fc.constantFrom('v1', 'webhooks', 'deliveries', 'attempts', '', '..', '.', 'wh', 'msg_1'),
    fc.constantFrom('%FF', '%ED%A0%80', '%C0%AF', '%00', '%', '%2F', '%E2%82%AC', '%F0%9F%98%80', '%uD800'),
    fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@-]{0,20}$/),
    fc.nat(300).map((n) => 'x'.repeat(n)),
  );
  const query = fc.array(
    fc.tuple(
      fc.constantFrom('limit', 'cursor', 'state', 'other', '', 'limit%00'),
      fc.oneof(
        fc.constantFrom(
          '1',
          '100',
          '101',
          '0',
          '-1',
          '1e2',
          '%201',
          '0x10',
          '99999999999999999999',
          'DELIVERED',
          'FAILED',
          '%FF',
          '1-0',
          '0-0',
          '99999999999999999-1',
        ),
        fc.stringMatching(/^[A-Za-z0-9%._-]{0,12}$/),
      ),
    ),
    { maxLength: 4 },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(piece, { minLength: 0, maxLength: 6 }), query, async (pieces, params) => {
      const path = `/${pieces.join('/')}${params.length ? `?${params.map(([k, v]) => `${k}=${v}`).join('&')}` : ''}`;
      const r = await get(path);
      assert.ok(
        [200, 400, 404, 405].includes(r.status),
        `${r.status} for ${path.slice(0, 120)}: ${r.body.slice(0, 200)}`,
      );
      assert.equal(r.type, 'application/json');
      const body = JSON.parse(r.body) as { error?: string; message?: string };
      if (r.status === 400) assert.ok(body.error === 'invalid_request' && body.message, path.slice(0, 120));
    }),
    { numRuns: 400 },
  );
  assert.equal(
    [...parseMetrics(await metrics.registry.metrics()).entries()].filter(([k]) => k.includes('status="500"')).length,
    0,
  );
});

test("a result Redis refuses to log (a wrong type under its webhook's key) is counted as REDIS_REJECTED; the rest of its batch is logged", async (t) => {
  const s = await createScenario(t);
  const rx = await startReceiver(t);
  const redis = serviceRedis();
  defer(t, () => redis.disconnect());
  await redis.set(`${bucketPrefix(s.redisPrefix, bucketOf('wh_wrong'))}dlog:w:wh_wrong`, 'not a stream');
  await putSubscription(s, sampleSubscription({ id: 'wh_wrong', url: `${rx.url}/a` }));
  await putSubscription(s, sampleSubscription({ id: 'wh_fine', url: `${rx.url}/b` }));
  const d = await startDispatcher(s);
  await produceEvents(s, [sampleEvent({ eventId: 'e1' }), sampleEvent({ eventId: 'e2' })]);
  const m = await waitFor(
    async () => {
      const m = parseMetrics(await d.metrics());
      return (
        (m.get('blue_webhooks_delivery_log_skipped_total{reason="REDIS_REJECTED"}') ?? 0) +
          (m.get('blue_webhooks_delivery_log_appended_total') ?? 0) ===
          4 && m
      );
    },
    { what: 'four results logged or refused' },
  );
  assert.equal(m.get('blue_webhooks_delivery_log_skipped_total{reason="REDIS_REJECTED"}'), 2);
  assert.equal(m.get('blue_webhooks_delivery_log_appended_total'), 2);
  assert.equal(rx.deliveries.length, 4, 'deliveries never wait for the log');
  assert.ok(d.logs.some((l) => l.msg === 'a result was not logged' && l.reason === 'REDIS_REJECTED'));
});

test('a batch with a key Redis refuses: that attempt is answered as refused, and every other one is logged once', async (t) => {
  const { redis, prefix } = testRedis(t);
  const log = new DeliveryLog(redis, prefix, { maxPerWebhook: 100, retentionMs: 3_600_000 });
  await redis.set(`${bucketPrefix(prefix, bucketOf('wh_wrong'))}dlog:w:wh_wrong`, 'not a stream');
  const now = Date.now();
  const batch = [
    attemptResult('wh_fine', 1, now),
    attemptResult('wh_wrong', 2, now),
    attemptResult('wh_fine', 3, now + 1),
    attemptResult('wh_other', 4, now + 2),
  ];
  const refused = await log.append(batch);
  assert.deepEqual(
    refused.map((r) => r.result.deliveryId),
    ['msg_2'],
  );
  assert.match(refused[0]!.message, /WRONGTYPE/);
  // Nothing sent twice: a refusal does not make the rest of the batch go again.
  assert.equal(await redis.xlen(`${bucketPrefix(prefix, bucketOf('wh_fine'))}dlog:w:wh_fine`), 2);
  assert.equal(await redis.xlen(`${bucketPrefix(prefix, bucketOf('wh_other'))}dlog:w:wh_other`), 1);
  assert.deepEqual(
    (await log.attempts('wh_fine', { limit: 10, cursor: null, state: null })).data.map((a) => a.deliveryId),
    ['msg_3', 'msg_1'],
  );
  assert.equal((await log.delivery('msg_4'))[0]?.webhookId, 'wh_other');
});

test('any result, however hostile (lone surrogates, NUL, huge answers, future, past and impossible times): refused with a reason, passed over as expired, or logged and read back well-formed with at most 1 KB of answer', async (t) => {
  const { redis, prefix } = testRedis(t);
  const now = Date.now();
  const text = fc.string({ unit: 'binary', maxLength: 30 });
  const time = fc.oneof(
    fc.integer({ min: now - 7_200_000, max: now + 7_200_000 }),
    fc.constantFrom(0, -1, 1.5, Number.NaN, 8.64e15, 9e15, Number.MAX_SAFE_INTEGER, 1e300),
    fc.double(),
  );
  const hostileResult = fc.record({
    deliveryId: text,
    eventId: text,
    webhookId: text,
    eventType: text,
    projectId: text,
    attempt: fc.integer(),
    outcome: fc.constantFrom('DELIVERED', 'FAILED', 'RETRY_SCHEDULED'),
    httpStatus: fc.option(fc.integer()),
    durationMs: fc.integer(),
    error: fc.option(
      fc.record({ code: fc.constant('HTTP_ERROR'), message: fc.string({ unit: 'binary', maxLength: 200 }) }),
    ),
    timestamp: time,
    reason: fc.constant(null),
    nextAttemptAt: fc.option(time),
    responseSnippet: fc.option(fc.string({ unit: 'binary', maxLength: 3000 })),
    source: fc.constant(null),
  });
  let run = 0;
  await fc.assert(
    fc.asyncProperty(hostileResult, async (generated) => {
      const r = generated as unknown as WebhookResult;
      // Each run a log of its own, so that ids repeated across runs do not meet.
      const log = new DeliveryLog(redis, `${prefix}${run++}:`, { maxPerWebhook: 5, retentionMs: 3_600_000 });
      const why = unloggable(r);
      if (why !== null) return;
      assert.ok(r.timestamp <= Date.now() + 3_600_000, 'a result timed over an hour ahead is refused');
      if (log.expired(r)) return;
      assert.deepEqual(await log.append([r]), []);
      const [logged] = await log.delivery(r.deliveryId);
      assert.ok(logged, 'read back by its delivery id');
      assert.equal(logged.eventId, r.eventId);
      const snippet = logged.responseSnippet;
      assert.ok(
        snippet === null || (snippet.isWellFormed() && Buffer.byteLength(snippet) <= 1024),
        'at most 1 KB, well-formed',
      );
      assert.ok(
        r.responseSnippet === null || r.responseSnippet.toWellFormed().startsWith(snippet ?? ''),
        'the start of the answer',
      );
      assert.ok(logged.error === null || logged.error.message.isWellFormed());
    }),
    { numRuns: 300, seed: 20261205 },
  );
});
