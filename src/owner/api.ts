// The owner API (docs/openapi.yaml): what Blue's settings page reads about a webhook's deliveries.
// Any replica answers any request, since the log lives in Redis. Every answer is JSON; input that
// cannot be right is a 400 with a reason, never a 500.
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Metrics } from '../metrics/index.js';
import type { OutcomeState } from '../results/index.js';
import { BlueWebhooksError, errorMessage, type ListeningServer, type Logger, listen } from '../shared/index.js';
import { SUBSCRIPTION_LIMITS } from '../subscriptions/index.js';
import type { ActionRefusal, OwnerActions } from './actions.js';
import { type DeliveryLog, STREAM_ID } from './delivery-log.js';

export interface OwnerApiOptions {
  /** API_PORT (0 picks one). */
  port: number;
  /** API_HOST. */
  host: string;
  /** API_TOKEN. */
  token: string;
  /** API_RATE_LIMIT_PER_SECOND. */
  ratePerSecond: number;
  log: DeliveryLog;
  /** Test events and resends; without it (RETRY_SCHEDULE=none, no retry topic) those routes answer 503. */
  actions: OwnerActions | null;
  metrics: Metrics;
  logger: Logger;
}

export type OwnerApi = ListeningServer;

/** Routes, as api_requests_total labels them. */
type Route = 'attempts' | 'delivery' | 'test' | 'resend' | 'unknown';

/** Error codes of the API's answers (`error` in the body). */
type ApiError =
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'invalid_request'
  | 'conflict'
  | 'gone'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

/** The answer to each refusal of an action. */
const REFUSALS: Record<ActionRefusal, { status: number; error: ApiError }> = {
  unknown_webhook: { status: 404, error: 'not_found' },
  unknown_delivery: { status: 404, error: 'not_found' },
  disabled: { status: 409, error: 'conflict' },
  gone: { status: 410, error: 'gone' },
};

/** Each route: its path's shape (segments, `*` an id) and its method. */
const ROUTES: readonly { route: Exclude<Route, 'unknown'>; shape: readonly string[]; method: 'GET' | 'POST' }[] = [
  { route: 'attempts', shape: ['v1', 'webhooks', '*', 'attempts'], method: 'GET' },
  { route: 'test', shape: ['v1', 'webhooks', '*', 'test'], method: 'POST' },
  { route: 'delivery', shape: ['v1', 'deliveries', '*'], method: 'GET' },
  { route: 'resend', shape: ['v1', 'deliveries', '*', 'resend'], method: 'POST' },
];

/** The route a path is on, and its id segment; null when none. */
function routeOf(path: string): { route: (typeof ROUTES)[number]; id: string } | null {
  const parts = path.split('/');
  if (parts[0] !== '') return null;
  const segments = parts.slice(1);
  for (const r of ROUTES) {
    if (r.shape.length !== segments.length) continue;
    if (r.shape.every((s, i) => s === '*' || s === segments[i]))
      return { route: r, id: segments[r.shape.indexOf('*')]! };
  }
  return null;
}

const STATES: readonly OutcomeState[] = ['DELIVERED', 'FAILED', 'RETRY_SCHEDULED'];
const MAX_LIMIT = 100;
const DEFAULT_LIMIT = 20;

class BadRequest extends Error {}

/** A path segment as an id: percent-decoded to well-formed text of 1 to 256 characters. */
function idFrom(segment: string, what: string): string {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    throw new BadRequest(`${what} is not valid percent-encoded UTF-8`);
  }
  if (id.length === 0 || id.length > SUBSCRIPTION_LIMITS.maxIdLength)
    throw new BadRequest(`${what} must have 1 to ${SUBSCRIPTION_LIMITS.maxIdLength} characters`);
  if (!id.isWellFormed()) throw new BadRequest(`${what} is not well-formed Unicode`);
  return id;
}

/** The query, each parameter at most once and none but `allowed`. */
function queryOf(search: string, allowed: readonly string[]): Map<string, string> {
  const query = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(search)) {
    if (!allowed.includes(name)) throw new BadRequest(`unknown parameter ${JSON.stringify(name.slice(0, 64))}`);
    if (query.has(name)) throw new BadRequest(`parameter ${name} is given twice`);
    query.set(name, value);
  }
  return query;
}

function attemptsQuery(search: string) {
  const q = queryOf(search, ['limit', 'cursor', 'state']);
  const limitText = q.get('limit');
  if (limitText !== undefined && !/^\d{1,3}$/.test(limitText))
    throw new BadRequest(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  const limit = limitText === undefined ? DEFAULT_LIMIT : Number(limitText);
  if (limit < 1 || limit > MAX_LIMIT) throw new BadRequest(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  const cursor = q.get('cursor') ?? null;
  if (cursor !== null && !STREAM_ID.test(cursor)) throw new BadRequest('cursor is not one this API gave');
  const state = q.get('state') ?? null;
  if (state !== null && !(STATES as readonly string[]).includes(state))
    throw new BadRequest(`state must be one of ${STATES.join(', ')}`);
  return { limit, cursor, state };
}

/** A token bucket: `rate` requests a second, bursts of as many. */
class RateLimit {
  private tokens: number;
  private at = Date.now();
  constructor(private readonly rate: number) {
    this.tokens = rate;
  }
  /** 0 when a request may go now, else the seconds until one may. */
  take(): number {
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.rate));
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export async function startOwnerApi(options: OwnerApiOptions): Promise<OwnerApi> {
  const { log, metrics, logger } = options;
  const expected = digest(`Bearer ${options.token}`);
  const limit = new RateLimit(options.ratePerSecond);

  const handle = async (
    req: http.IncomingMessage,
  ): Promise<{ route: Route; status: number; body: object; headers?: Record<string, string> }> => {
    const fail = (
      route: Route,
      status: number,
      error: ApiError,
      message?: string,
      headers?: Record<string, string>,
    ) => ({
      route,
      status,
      body: message === undefined ? { error } : { error, message },
      headers,
    });
    const wait = limit.take();
    if (wait > 0) return fail('unknown', 429, 'rate_limited', 'too many requests', { 'retry-after': String(wait) });
    // Compared as digests: equal lengths, constant time, whatever was sent.
    if (!timingSafeEqual(digest(req.headers.authorization ?? ''), expected))
      return fail('unknown', 401, 'unauthorized');
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const search = q === -1 ? '' : url.slice(q + 1);
    const found = routeOf(path);
    if (found === null) return fail('unknown', 404, 'not_found', 'no such route');
    const { route } = found.route;
    if (req.method !== found.route.method)
      return fail(route, 405, 'method_not_allowed', `${found.route.method} only`, { allow: found.route.method });
    try {
      const id = idFrom(found.id, route === 'attempts' || route === 'test' ? 'the webhook id' : 'the delivery id');
      if (route === 'attempts') return { route, status: 200, body: await log.attempts(id, attemptsQuery(search)) };
      queryOf(search, []);
      if (route === 'delivery') {
        const attempts = await log.delivery(id);
        if (attempts.length === 0) return fail(route, 404, 'not_found', 'no attempt of this delivery is in the log');
        return { route, status: 200, body: { data: attempts } };
      }
      if (options.actions === null)
        return fail(route, 503, 'unavailable', 'no retry topic to send through (RETRY_SCHEDULE=none)');
      const result = route === 'test' ? await options.actions.sendTest(id) : await options.actions.resend(id);
      if ('refused' in result) {
        const { status, error } = REFUSALS[result.refused];
        return fail(route, status, error, result.message);
      }
      return { route, status: 202, body: { deliveryId: result.deliveryId } };
    } catch (err) {
      if (err instanceof BadRequest) return fail(route, 400, 'invalid_request', err.message);
      if (err instanceof BlueWebhooksError && err.retriable)
        return fail(route, 503, 'unavailable', 'Redis or Kafka cannot be reached now', { 'retry-after': '1' });
      logger.error('owner API: unexpected error', { route, error: errorMessage(err) });
      return fail(route, 500, 'internal');
    }
  };

  const server = http.createServer((req, res) => {
    req.resume();
    handle(req).then(
      ({ route, status, body, headers }) => {
        metrics.apiRequests.inc({ route, status: String(status) });
        res.writeHead(status, {
          'content-type': 'application/json',
          'cache-control': 'no-store',
          ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
          ...headers,
        });
        res.end(JSON.stringify(body));
      },
      (err: unknown) => {
        logger.error('owner API: unexpected error', { error: errorMessage(err) });
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"internal"}');
      },
    );
  });
  return listen(server, options.port, options.host);
}
