/** Structured JSON logs on stdout, one object a line. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

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

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = LEVELS[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stdout.write(line));
  const bindings = opts.bindings ?? {};
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] < min) return;
    const entry = redact({ time: new Date().toISOString(), level, msg, ...bindings, ...fields });
    write(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (b) => createLogger({ ...opts, bindings: { ...bindings, ...b } }),
  };
}
