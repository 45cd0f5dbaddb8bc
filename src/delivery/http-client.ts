import type { IncomingHttpHeaders } from 'node:http';
import type tls from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import type { Metrics } from '../metrics/index.js';
import { BlueWebhooksError } from '../shared/index.js';
import type { HttpAnswer } from './classify.js';
import { createConnector } from './connector.js';
import { IdleConnections } from './idle-connections.js';
import type { TargetGuard } from './target-guard.js';
import { TlsSessionStore } from './tls-sessions.js';

/** The start of an endpoint's answer kept with its outcome, in bytes: what the delivery log shows. */
export const RESPONSE_SNIPPET_BYTES = 1024;

export interface HttpClientOptions {
  /** Keep-alive connections per origin. */
  maxConnectionsPerOrigin: number;
  /** Idle connections across all origins; past it, those of the origins used least recently are closed. */
  maxIdleConnections: number;
  /** TLS sessions kept for resumption, across all origins. */
  tlsSessionCacheSize: number;
  /** Trust for outgoing TLS, for tests; the default context (system CAs and NODE_EXTRA_CA_CERTS) otherwise. */
  secureContext?: tls.SecureContext;
  /**
   * Offer HTTP/2 (ALPN) to TLS endpoints. Off in the service: `npm run bench -- --tls` measured it
   * on the grid and it does not help where deliveries are sparse (docs/runs/2026-12-04.md).
   */
  allowH2?: boolean;
  /** Where handshakes and connections are counted, if anywhere. */
  metrics?: Pick<Metrics, 'tlsHandshakes' | 'idleConnectionsClosed'>;

  connectTimeoutMs: number;

  headersTimeoutMs: number;
  /** Longest silence while reading the body. */
  bodyTimeoutMs: number;
  /** Overall deadline of one request, body included. */
  attemptTimeoutMs: number;
  /** At most this much of a response body is read. */
  maxResponseBytes: number;
  /** Bytes of the body kept as a snippet for the outcome (the delivery log shows 1 KB). Default RESPONSE_SNIPPET_BYTES. */
  snippetBytes?: number;
  guard: TargetGuard;
}

export interface HttpPost {
  url: URL;
  headers: Record<string, string>;
  body: Buffer;
}

export type HttpPostAnswer = HttpAnswer & { snippet: string | null; durationMs: number };

const SWEEP_MS = 100;

/** Something with an overall deadline: told once when it passes. */
interface Expiring {
  expire(reason: Error): void;
}

/**
 * Overall deadlines for many requests with one timer: a timer per request (AbortSignal.timeout)
 * costs more than the request on a busy hot path. Deadlines are honoured within SWEEP_MS.
 */
class Deadlines {
  private readonly live = new Map<Expiring, number>();
  private timer: NodeJS.Timeout | null = null;

  /** Tells `item` once `deadline` (epoch ms) has passed, unless it ends first. */
  start(item: Expiring, deadline: number): void {
    this.live.set(item, deadline);
    this.timer ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  end(item: Expiring): void {
    this.live.delete(item);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [item, deadline] of this.live) {
      if (deadline <= now) {
        this.live.delete(item);
        item.expire(deadlineExceeded());
      }
    }
    if (this.live.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

function deadlineExceeded(): Error {
  return Object.assign(new Error('attempt deadline exceeded'), { name: 'TimeoutError' });
}

type PostReply = HttpAnswer & { snippet: string | null };

/**
 * One request, as an undici dispatch handler. Why not `agent.request()`: it wraps every response
 * in a Readable stream, read here through an async iterator, with an AbortController, a listener
 * and a promise race around it, all per delivery; on the hot path they cost more CPU than the
 * request itself. The handler sees the same events directly and settles one promise, once:
 * - the status and headers decide the outcome; the first `snippetBytes` of the body are kept;
 * - past `maxResponseBytes` of body the connection is dropped rather than drained;
 * - a body cut short after the status line leaves the status standing;
 * - the overall deadline holds even while the request waits in the pool's queue (aborting a
 *   queued request does not take it out of the queue): the attempt settles as timed out at once,
 *   and a request that reaches a connection after that is aborted before it is written;
 * - so is one that reaches a connection with less than `minStartMs` of its deadline left (it
 *   waited in the queue behind a slow request): it would time out as soon as it was sent, and the
 *   endpoint would get a request reported as failed, then its retry. Deadlines are only honoured
 *   within a sweep anyway, so a request that close to its deadline counts as past it.
 */
class Attempt implements Dispatcher.DispatchHandler, Expiring {
  readonly reply: Promise<PostReply>;
  private resolve!: (reply: PostReply) => void;
  private settled = false;
  private controller: Dispatcher.DispatchController | null = null;
  private abandoned: Error | null = null;
  private status = 0;
  private headers: Record<string, string | string[] | undefined> = {};
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  private readBytes = 0;

  constructor(
    private readonly snippetBytes: number,
    private readonly maxResponseBytes: number,
    /** Epoch ms by which the attempt must have ended. */
    private readonly deadline: number,
    private readonly minStartMs: number,
  ) {
    this.reply = new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abandoned) controller.abort(this.abandoned);
    else if (this.deadline - Date.now() < this.minStartMs) this.expire(deadlineExceeded());
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // informational (1xx): the real response follows
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    if (this.keptBytes < this.snippetBytes) {
      const part = chunk.subarray(0, this.snippetBytes - this.keptBytes);
      this.kept.push(part);
      this.keptBytes += part.length;
    }
    this.readBytes += chunk.length;
    if (this.readBytes >= this.maxResponseBytes) {
      this.answered();
      controller.abort(new Error('response body cap reached'));
    }
  }

  onResponseEnd(): void {
    this.answered();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.status > 0) this.answered();
    else this.failed(error);
  }

  expire(reason: Error): void {
    if (this.settled) return;
    this.failed(reason);
    this.abandoned = reason;
    this.controller?.abort(reason);
  }

  /** A request refused before it was dispatched (an invalid option, a closed agent). */
  failed(error: unknown): void {
    this.settle({ error, snippet: null });
  }

  private answered(): void {
    const snippet = this.keptBytes > 0 ? Buffer.concat(this.kept).toString('utf8') : null;
    this.settle({ status: this.status, headers: this.headers, snippet });
  }

  private settle(reply: PostReply): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(reply);
  }
}

/** The reply with how long it took since `started` (a performance.now() reading). */
function timed(reply: PostReply, started: number): HttpPostAnswer {
  return Object.assign(reply, { durationMs: Math.round(performance.now() - started) });
}

export interface ConnectionStats {
  /** Connections open now, and how many of them are idle (their origin has nothing under way). */
  open: number;
  idle: number;
  /** Idle connections closed to keep within maxIdleConnections. */
  closedOverBudget: number;
  tlsFullHandshakes: number;
  tlsResumedHandshakes: number;
  tlsSessionsKept: number;
}

/** Keep-alive POSTs through undici: bounded pools per origin, no redirects, capped response reads. */
export class HttpClient {
  private readonly agent: Agent;
  private readonly snippetBytes: number;
  /** Less than this left of its deadline when a request reaches a connection: not sent (see Attempt). */
  private readonly minStartMs: number;
  private readonly deadlines = new Deadlines();
  private readonly idle: IdleConnections;
  private readonly sessions: TlsSessionStore;
  private readonly handshakes = { full: 0, resumed: 0 };

  constructor(private readonly options: HttpClientOptions) {
    this.snippetBytes = options.snippetBytes ?? RESPONSE_SNIPPET_BYTES;
    this.minStartMs = Math.min(SWEEP_MS, options.attemptTimeoutMs / 10);
    this.idle = new IdleConnections(options.maxIdleConnections, (n) => options.metrics?.idleConnectionsClosed.inc(n));
    this.sessions = new TlsSessionStore(options.tlsSessionCacheSize);
    this.agent = new Agent({
      connections: options.maxConnectionsPerOrigin,
      pipelining: 1,
      allowH2: options.allowH2 ?? false,
      // Without a Keep-Alive hint from the server; with one, undici keeps a connection that long less 2 s.
      keepAliveTimeout: 30_000,
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
      // Every connection resolves its host through the guard, which refuses internal addresses.
      connect: createConnector({
        timeoutMs: options.connectTimeoutMs,
        lookup: options.guard.lookup,
        sessions: this.sessions,
        secureContext: options.secureContext,
        alpn: options.allowH2 ? ['h2', 'http/1.1'] : ['http/1.1'],
        onSocket: (origin, socket) => this.idle.opened(origin, socket),
        onHandshake: (resumed) => {
          if (resumed) this.handshakes.resumed++;
          else this.handshakes.full++;
          options.metrics?.tlsHandshakes.inc({ resumed: String(resumed) });
        },
      }),
    });
  }

  /** Connections and TLS handshakes so far, for metrics and benchmarks. */
  connectionStats(): ConnectionStats {
    return {
      ...this.idle.counts(),
      closedOverBudget: this.idle.closed,
      tlsFullHandshakes: this.handshakes.full,
      tlsResumedHandshakes: this.handshakes.resumed,
      tlsSessionsKept: this.sessions.size,
    };
  }

  /** Never throws: failures come back as `{ error }`. */
  async post(req: HttpPost): Promise<HttpPostAnswer> {
    const started = performance.now();
    try {
      this.options.guard.checkUrl(req.url);
    } catch (error) {
      return timed({ error, snippet: null }, started);
    }
    let headers = req.headers;
    if (req.url.username) {
      try {
        const user = decodeURIComponent(req.url.username);
        const pass = decodeURIComponent(req.url.password);
        headers = { ...headers, authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
      } catch {
        const error = new BlueWebhooksError('INVALID_URL', 'the URL user info has an invalid percent-escape');
        return timed({ error, snippet: null }, started);
      }
    }
    const { attemptTimeoutMs, maxResponseBytes } = this.options;
    const deadline = Date.now() + attemptTimeoutMs;
    const attempt = new Attempt(this.snippetBytes, maxResponseBytes, deadline, this.minStartMs);
    this.deadlines.start(attempt, deadline);
    const origin = req.url.origin;
    this.idle.busy(origin);
    try {
      this.agent.dispatch(
        {
          origin,
          path: `${req.url.pathname}${req.url.search}`,
          method: 'POST',
          headers,
          body: req.body,
        },
        attempt,
      );
    } catch (error) {
      attempt.failed(error);
    }
    try {
      return timed(await attempt.reply, started);
    } finally {
      this.deadlines.end(attempt);
      this.idle.done(origin);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
