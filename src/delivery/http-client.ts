import { Agent } from 'undici';
import { BlueWebhooksError } from '../shared/errors.js';
import type { AttemptResult } from './outcome.js';
import type { TargetGuard } from './target-guard.js';

export interface HttpClientOptions {
  /** Keep-alive connections per origin. Default 32. */
  maxConnectionsPerOrigin: number;
  /** Default 5000 ms. */
  connectTimeoutMs: number;
  /** Default 10000 ms. */
  headersTimeoutMs: number;
  /** Longest silence while reading the body. Default 10000 ms. */
  bodyTimeoutMs: number;
  /** Overall deadline of one request, body included. Default 15000 ms. */
  attemptTimeoutMs: number;
  /** At most this much of a response body is read. Default 65536. */
  maxResponseBytes: number;
  /** Bytes of the body kept as a snippet for the outcome. Default 512. */
  snippetBytes?: number;
  guard: TargetGuard;
}

export interface HttpPost {
  url: URL;
  headers: Record<string, string>;
  body: Buffer;
}

export type HttpPostResult = AttemptResult & { snippet: string | null; durationMs: number };

const SWEEP_MS = 100;

/**
 * Overall deadlines for many requests with one timer: a timer per request (AbortSignal.timeout)
 * costs more than the request on a busy hot path. Deadlines are honoured within SWEEP_MS.
 */
class Deadlines {
  private readonly live = new Map<AbortController, number>();
  private timer: NodeJS.Timeout | null = null;

  start(timeoutMs: number): AbortController {
    const c = new AbortController();
    this.live.set(c, Date.now() + timeoutMs);
    this.timer ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
    return c;
  }

  end(c: AbortController): void {
    this.live.delete(c);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [c, deadline] of this.live) {
      if (deadline <= now) {
        this.live.delete(c);
        c.abort(Object.assign(new Error('attempt deadline exceeded'), { name: 'TimeoutError' }));
      }
    }
    if (this.live.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

/** A promise that rejects with the signal's reason once it aborts; dispose() when no longer needed. */
function untilAborted(signal: AbortSignal): { promise: Promise<never>; dispose: () => void } {
  let onAbort = () => {};
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  promise.catch(() => {}); // a rejection after the race is over is nobody's business
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/** Keep-alive POSTs through undici: bounded pools per origin, no redirects, capped response reads. */
export class HttpClient {
  private readonly agent: Agent;
  private readonly snippetBytes: number;
  private readonly deadlines = new Deadlines();

  constructor(private readonly o: HttpClientOptions) {
    this.snippetBytes = o.snippetBytes ?? 512;
    this.agent = new Agent({
      connections: o.maxConnectionsPerOrigin,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: o.headersTimeoutMs,
      bodyTimeout: o.bodyTimeoutMs,
      // Every connection resolves its host through the guard, which refuses internal addresses.
      connect: { timeout: o.connectTimeoutMs, lookup: o.guard.lookup },
    });
  }

  /** Never throws: failures come back as `{ error }`. */
  async post(req: HttpPost): Promise<HttpPostResult> {
    const started = performance.now();
    const done = (r: AttemptResult, snippet: string | null = null): HttpPostResult => ({
      ...r,
      snippet,
      durationMs: Math.round(performance.now() - started),
    });
    try {
      this.o.guard.checkUrl(req.url);
    } catch (error) {
      return done({ error });
    }
    const headers = { ...req.headers };
    if (req.url.username) {
      try {
        const user = decodeURIComponent(req.url.username);
        const pass = decodeURIComponent(req.url.password);
        headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
      } catch {
        return done({ error: new BlueWebhooksError('INVALID_URL', 'the URL user info has an invalid percent-escape') });
      }
    }
    const deadline = this.deadlines.start(this.o.attemptTimeoutMs);
    const expired = untilAborted(deadline.signal);
    try {
      // The race makes the deadline hold even while the request waits inside undici for a
      // connection of the pool: aborting does not take a queued request out of that queue.
      const res = await Promise.race([
        this.agent.request({
          origin: req.url.origin,
          path: `${req.url.pathname}${req.url.search}`,
          method: 'POST',
          headers,
          body: req.body,
          signal: deadline.signal,
        }),
        expired.promise,
      ]);
      const snippet = await this.readCapped(res.body);
      return done({ status: res.statusCode, headers: res.headers }, snippet);
    } catch (error) {
      return done({ error });
    } finally {
      expired.dispose();
      this.deadlines.end(deadline);
    }
  }

  /**
   * Reads at most maxResponseBytes of the body, then drops the connection instead of draining
   * the rest. The status decides the outcome; a body that fails after it changes nothing.
   */
  private async readCapped(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string | null> {
    const keep: Buffer[] = [];
    let kept = 0;
    let read = 0;
    try {
      for await (const chunk of body) {
        if (kept < this.snippetBytes) {
          keep.push(chunk.subarray(0, this.snippetBytes - kept));
          kept += Math.min(chunk.length, this.snippetBytes - kept);
        }
        read += chunk.length;
        if (read >= this.o.maxResponseBytes) break; // leaving the loop destroys the stream
      }
    } catch {
      // A body cut short after the status line: the status still counts.
    } finally {
      body.destroy();
    }
    return kept > 0 ? Buffer.concat(keep).toString('utf8') : null;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
