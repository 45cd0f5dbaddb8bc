/** Stable error codes: they appear in outcomes, DLQ headers, logs and metric labels. */
export const ERROR_CODES = [
  // Input that can never succeed as it is.
  'DECODE_FAILED',
  'UNKNOWN_SCHEMA',
  'INVALID_JSON',
  'INVALID_EVENT',
  'INVALID_SUBSCRIPTION',
  'INVALID_FILTER',
  'MALFORMED_UNICODE',
  'CONFIG_INVALID',
  'INVALID_HEADER',
  'INVALID_RETRY_RECORD',
  'RECORD_TOO_LARGE',
  'INVALID_RESULT',
  // A bug or a record no rule foresaw: the record is dead-lettered, the partition moves on.
  'INTERNAL_ERROR',
  'STALLED',
  // Redis refused a command (a script error, a wrong type, a bad argument): asking again changes nothing.
  'REDIS_REJECTED',
  // Delivery.
  'HTTP_STATUS',
  'TIMEOUT',
  'CONNECT_FAILED',
  'CONNECTION_RESET',
  'DNS_FAILED',
  'TARGET_REFUSED',
  'INVALID_URL',
  'RESPONSE_TOO_LARGE',
  'REQUEST_FAILED',
  'CIRCUIT_OPEN',
  'ENDPOINT_SATURATED',
  'RATE_LIMITED',
  'ORDER_LINE_FULL',
  // Infrastructure: waiting and retrying is the answer.
  'REDIS_UNAVAILABLE',
  'KAFKA_UNAVAILABLE',
  'REGISTRY_UNAVAILABLE',
  'TABLE_NOT_READY',
  'SHUTTING_DOWN',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const CODES: ReadonlySet<string> = new Set(ERROR_CODES);

export function isErrorCode(value: string): value is ErrorCode {
  return CODES.has(value);
}

/** Where in the handling of one record an unexpected error happened (internal_errors_total{stage}). */
export type Stage = 'match' | 'payload' | 'delivery' | 'retry';

export interface BlueWebhooksErrorOptions {
  /** Whether trying the same thing again may succeed. Default false. */
  retriable?: boolean;
  cause?: unknown;
}

/** The one base error of the service: a stable code, an explicit retriable flag and a cause. */
export class BlueWebhooksError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, opts: BlueWebhooksErrorOptions = {}) {
    super(message, { cause: opts.cause });
    this.name = 'BlueWebhooksError';
    this.code = code;
    this.retriable = opts.retriable ?? false;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function errorCode(err: unknown): ErrorCode | null {
  return err instanceof BlueWebhooksError ? err.code : null;
}

export function isShuttingDown(err: unknown): boolean {
  return errorCode(err) === 'SHUTTING_DOWN';
}

/**
 * What went wrong in a JSON.parse, without the input: V8's messages quote the text around the
 * error, which can be a secret (subscriptions) or a customer's data (events).
 */
export function jsonParseProblem(err: unknown): string {
  const at = /position (\d+)/.exec(errorMessage(err));
  return at ? `not valid JSON (at position ${at[1]})` : 'not valid JSON';
}
