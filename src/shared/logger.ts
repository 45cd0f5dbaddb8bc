/** Structured JSON logs on stdout, one object a line, written by pino. */
import { type Logger as PinoLogger, pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

// A field whose name contains one of these (case, '-' and '_' aside) is replaced before it is
// written, however deep it sits: secret, previousSecret, clientSecret, password, passphrase, pwd,
// accessToken, apiKey, api_key, authorization, bearer, cookie, set-cookie, x-blue-signature, ...
const SENSITIVE_PART =
  /secret|passw|passphrase|pwd|token|apikey|authorization|bearer|cookie|signature|credential|privatekey/;
// Names too short to look for inside others ("keyBase64", "author"), sensitive on their own; and
// `headers`, a subscription's custom headers, whose values are credentials whatever their names.
const SENSITIVE_NAMES = new Set(['pass', 'auth', 'key', 'privkey', 'headers']);
// Keys of the log line itself: a field of that name would make a second one (and could fake the level).
const LINE_KEYS = new Set(['level', 'time', 'msg']);
// Beyond this depth a value is not walked but replaced, so nothing deep is written unchecked.
const MAX_DEPTH = 32;

/** Whether a field of this name is never logged. */
export function isSensitiveName(name: string): boolean {
  const normal = name.toLowerCase().replace(/[-_]/g, '');
  return SENSITIVE_NAMES.has(normal) || SENSITIVE_PART.test(normal);
}

// Why parsing and not one pattern. A URL's credentials are wherever the WHATWG URL parser finds
// them: user info runs to the *last* '@' of the authority (a password may hold '@', a space or a
// quote), special schemes need no slashes and take '\' for '/' ("https:user:pw@h", "http:\\u:pw@h"),
// and a query or fragment carries its secrets as parameters ("?token=…", "#access_token=…"), whose
// values may themselves hold a space. So each URL in a text is walked as that parser would cut
// it: the authority up to its first '/', '\', '?' or '#' (or the end of the line), the path to the
// next whitespace, then the query and fragment, parameter by parameter (a quote is part of a
// value), as long as the next word still looks like one ("a=b"). Credentials go, names stay:
// "?token=[redacted]". Text after an authority that runs to the end of a line is hidden with it:
// a log line loses words rather than keeps a password.
const SCHEME = /\b([a-z][a-z0-9+.-]*):/gi;
const SPECIAL = new Set(['http', 'https', 'ws', 'wss', 'ftp', 'file']);

/** Takes credentials out of every URL written in a string: user info, and query and fragment values. */
export function redactText(text: string): string {
  if (!text.includes(':')) return text;
  let out = '';
  let copied = 0;
  for (const m of text.matchAll(SCHEME)) {
    const at = m.index + m[0].length;
    if (at < copied) continue;
    const special = SPECIAL.has(m[1]!.toLowerCase());
    let authority = at;
    while (text[authority] === '/' || text[authority] === '\\') authority++;
    if (!special && !text.startsWith('//', at)) continue;
    const end = redactUrlAt(text, authority, special);
    if (end === null) continue;
    out += text.slice(copied, authority) + end.text;
    copied = end.next;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

// A JSON member or a form field whose name says it holds a secret: `"token": "…"`, `password=…`.
const JSON_MEMBER = /"((?:[^"\\]|\\.){1,64})"(\s*:\s*)"(?:[^"\\]|\\.)*"?/g;
const FORM_FIELD = /(^|[?&\s])([A-Za-z0-9_.-]{1,64})=([^&\s]*)/g;

/**
 * An endpoint's answer as the delivery log and the results topic keep it: redactText, and the value
 * of every JSON member and form field named like a secret (isSensitiveName).
 */
export function redactBody(text: string): string {
  return redactText(text)
    .replace(JSON_MEMBER, (m, name: string, colon: string) =>
      isSensitiveName(name) ? `"${name}"${colon}"[redacted]"` : m,
    )
    .replace(FORM_FIELD, (m, lead: string, name: string) => (isSensitiveName(name) ? `${lead}${name}=[redacted]` : m));
}

/** The rest of one URL from its authority on, redacted, and where it ends in `text`; null when nothing needs redacting. */
function redactUrlAt(text: string, start: number, special: boolean): { text: string; next: number } | null {
  const limit = firstOf(text, '\r\n', start, text.length);
  const authorityEnd = firstOf(text, special ? '/\\?#' : '/?#', start, limit);
  const userInfoEnd = text.lastIndexOf('@', authorityEnd - 1);
  let result = '';
  let i = start;
  let changed = false;
  if (userInfoEnd >= start) {
    result += '[redacted]@';
    i = userInfoEnd + 1;
    changed = true;
  }
  const pathEnd = Math.min(firstOf(text, '?#', i, limit), wordEnd(text, i, limit));
  result += text.slice(i, pathEnd);
  i = pathEnd;
  while (i < limit && (text[i] === '?' || text[i] === '#')) {
    const part = parametersAt(text, i + 1, limit);
    if (text[i] === '#' && !part.text.includes('=')) break;
    result += text[i] + part.text;
    i = part.next;
    changed = true;
  }
  return changed ? { text: result, next: i } : null;
}

/** A query or fragment from `start`: each parameter's value replaced, and where it ends. */
function parametersAt(text: string, start: number, limit: number): { text: string; next: number } {
  let end = wordEnd(text, start, limit);
  // A value with a space in it: the next word still belongs here while it looks like a parameter.
  for (;;) {
    const next = /^\s+[^\s=&#?]*[=&]/.exec(text.slice(end, limit));
    if (!next) break;
    end = wordEnd(text, end + next[0].length, limit);
  }
  const hash = text.indexOf('#', start);
  if (hash !== -1 && hash < end && text[start - 1] === '?') end = hash;
  const params = text
    .slice(start, end)
    .split('&')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq === -1 ? (p === '' ? '' : '[redacted]') : `${p.slice(0, eq)}=[redacted]`;
    });
  return { text: params.join('&'), next: end };
}

function firstOf(text: string, chars: string, from: number, limit: number): number {
  for (let i = from; i < limit; i++) if (chars.includes(text[i]!)) return i;
  return limit;
}

function wordEnd(text: string, from: number, limit: number): number {
  return firstOf(text, ' \t\r\n', from, limit);
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

/**
 * A copy of a value that is safe to log: no secret by field name, no credential in a URL (values,
 * keys, error fields alike), no Buffer byte by byte, and no object twice (a shared or cyclic one
 * is written once, then named).
 */
export function redact(value: unknown): unknown {
  return redactValue(value, 0, new WeakSet());
}

/** The fields of a log line, redacted, with none that would make a second level, time or msg. */
function lineFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out = redactObject(fields, 0, new WeakSet([fields]));
  for (const k of LINE_KEYS) {
    if (!(k in out)) continue;
    out[`${k}_field`] = out[k];
    delete out[k];
  }
  return out;
}

function redactValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[repeated]';
  seen.add(value);
  if (ArrayBuffer.isView(value)) return `[${value.constructor.name} of ${value.byteLength} bytes]`;
  if (value instanceof Error) {
    const { code } = value as { code?: unknown };
    return {
      name: redactText(String(value.name)),
      message: redactText(value.message),
      ...(code === undefined ? {} : { code: redactValue(code, depth + 1, seen) }),
    };
  }
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen));
  return redactObject(value as Record<string, unknown>, depth, seen);
}

function redactObject(value: Record<string, unknown>, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in value) {
    if (!Object.hasOwn(value, k)) continue;
    out[redactText(k)] = isSensitiveName(k) ? '[redacted]' : redactValue(value[k], depth + 1, seen);
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
        log: lineFields,
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
  return lineFields(bindings);
}
