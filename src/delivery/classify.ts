import { BlueWebhooksError, type ErrorCode, errorMessage } from '../shared/index.js';

/** What one HTTP attempt came to, before any retry policy is applied. */
export interface AttemptOutcome {
  readonly delivered: boolean;
  /** Whether another attempt may succeed (timeouts, connection errors, 408, 429, 5xx). */
  readonly retriable: boolean;
  readonly httpStatus: number | null;
  readonly code: ErrorCode | null;
  readonly message: string | null;
  /** From Retry-After on a 429 or 503, uncapped; the retry policy caps it. */
  readonly retryAfterMs: number | null;
  /** 410 Gone: the endpoint asks us to stop. */
  readonly gone: boolean;
}

export type HttpAnswer =
  | { status: number; headers: Record<string, string | string[] | undefined> }
  | { error: unknown };

const RETRIABLE_STATUS = new Set([408, 429]);

/** The one place that maps an HTTP response or a request error to an outcome. */
export function classifyAttempt(r: HttpAnswer, nowMs = Date.now()): AttemptOutcome {
  if ('status' in r) {
    const s = r.status;
    if (s >= 200 && s < 300) {
      return {
        delivered: true,
        retriable: false,
        httpStatus: s,
        code: null,
        message: null,
        retryAfterMs: null,
        gone: false,
      };
    }
    const retriable = s >= 500 || RETRIABLE_STATUS.has(s);
    const retryAfterMs = s === 429 || s === 503 ? parseRetryAfter(header(r.headers, 'retry-after'), nowMs) : null;
    const kind = s >= 300 && s < 400 ? ' (redirects are not followed)' : '';
    return {
      delivered: false,
      retriable,
      httpStatus: s,
      code: 'HTTP_STATUS',
      message: `endpoint answered ${s}${kind}`,
      retryAfterMs,
      gone: s === 410,
    };
  }
  const { code, retriable } = classifyError(r.error);
  return {
    delivered: false,
    retriable,
    httpStatus: null,
    code,
    message: errorMessage(r.error),
    retryAfterMs: null,
    gone: false,
  };
}

function classifyError(err: unknown): { code: ErrorCode; retriable: boolean } {
  if (err instanceof BlueWebhooksError) return { code: err.code, retriable: err.retriable };
  const e = err as { code?: string; name?: string; cause?: unknown };
  if (e?.cause instanceof BlueWebhooksError) return { code: e.cause.code, retriable: e.cause.retriable };
  switch (e?.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ETIMEDOUT':
      return { code: 'TIMEOUT', retriable: true };
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { code: 'CONNECT_FAILED', retriable: true };
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return { code: 'CONNECTION_RESET', retriable: true };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { code: 'DNS_FAILED', retriable: true };
    case 'ERR_INVALID_URL':
      return { code: 'INVALID_URL', retriable: false };
  }
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError' || e?.code === 'UND_ERR_ABORTED') {
    return { code: 'TIMEOUT', retriable: true };
  }
  return { code: 'REQUEST_FAILED', retriable: true };
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Retry-After as delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(v: string | undefined, nowMs: number): number | null {
  if (!v) return null;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const at = Date.parse(t);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}
