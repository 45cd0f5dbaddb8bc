/** Structured JSON logs on stdout, one object a line, written by pino. */
import { type Logger as PinoLogger, pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

// A field whose name contains one of these (case, '-' and '_' aside) is replaced before it is
// written, however deep it sits: secret, previousSecret, clientSecret, password, accessToken,
// apiKey, api_key, authorization, cookie, set-cookie, x-blue-signature, webhook-signature, ...
const SENSITIVE_NAME = /secret|passw|token|apikey|authorization|cookie|signature|credential|privatekey/;
// Beyond this depth a value is not walked but replaced, so nothing deep is written unchecked.
const MAX_DEPTH = 32;

/** Whether a field of this name is never logged. */
export function isSensitiveName(name: string): boolean {
  return SENSITIVE_NAME.test(name.toLowerCase().replace(/[-_]/g, ''));
}

// URL user info (https://user:pass@host) and query strings (?token=...) in any logged text.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@?#"']+@/gi;
const URL_QUERY = /\b([a-z][a-z0-9+.-]*:\/\/[^\s?#"']*)\?[^\s#"']*/gi;

/** Takes credentials out of URLs written anywhere in a string. */
export function redactText(text: string): string {
  if (!text.includes('://')) return text;
  return text.replace(URL_USERINFO, '$1[redacted]@').replace(URL_QUERY, '$1?[redacted]');
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  /** Lowest level written. Default 'info'. */
  level?: LogLevel;
  /** Where lines go. Default process.stdout. */
  write?: (line: string) => void;
  bindings?: Record<string, unknown>;
}

/** A copy of a log entry that is safe to write: no secret by field name, no credential in a URL. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value instanceof Error) {
    return { name: value.name, message: redactText(value.message), code: (value as { code?: unknown }).code };
  }
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSensitiveName(k) ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

// Why no pino `redact.paths`: a path names one place ('webhook.secret', '*.secret'), one level of
// wildcard at most, while a secret can arrive at any depth (an error's cause, a config echoed in a
// nested field). So every entry is walked by name instead, in pino's `formatters.log`, which sees
// the fields before they are serialised. The bindings of a child logger go through the same walk.
export function createLogger(opts: LoggerOptions = {}): Logger {
  const destination = opts.write
    ? { write: opts.write }
    : // Asynchronous writes, flushed synchronously on process exit. No minimum chunk: a buffered
      // line would wait for the next ones, and a stall's log line must not wait for anything.
      // Past 64 MiB waiting for a stuck stdout, lines are dropped rather than the heap grown.
      pino.destination({ dest: 1, sync: false, maxLength: 64 * 1024 * 1024 });
  const root = pino(
    {
      level: opts.level ?? 'info',
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      // An Error is already a plain { name, message, code } by then: pino's own `err` serializer
      // would add the stack, which the logs never carried.
      serializers: { err: (value: unknown) => value },
      formatters: {
        level: (label) => ({ level: label }),
        log: (fields) => redact(fields) as Record<string, unknown>,
      },
    },
    destination,
  );
  return wrap(opts.bindings ? root.child(safeBindings(opts.bindings)) : root);
}

function wrap(inner: PinoLogger): Logger {
  const method =
    (level: LogLevel) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      if (!inner.isLevelEnabled(level)) return;
      inner[level](fields ?? {}, redactText(msg));
    };
  return {
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    child: (bindings) => wrap(inner.child(safeBindings(bindings))),
  };
}

function safeBindings(bindings: Record<string, unknown>): Record<string, unknown> {
  return redact(bindings) as Record<string, unknown>;
}
