/** Stable error codes: they appear in outcomes, DLQ headers, logs and metric labels. */
export type ErrorCode =
  // Input that can never succeed as it is.
  | 'DECODE_FAILED'
  | 'UNKNOWN_SCHEMA'
  | 'INVALID_JSON'
  | 'INVALID_EVENT'
  | 'INVALID_SUBSCRIPTION'
  | 'INVALID_FILTER'
  | 'CONFIG_INVALID'
  // Delivery.
  | 'HTTP_STATUS'
  | 'TIMEOUT'
  | 'CONNECT_FAILED'
  | 'CONNECTION_RESET'
  | 'DNS_FAILED'
  | 'TARGET_REFUSED'
  | 'INVALID_URL'
  | 'RESPONSE_TOO_LARGE'
  | 'REQUEST_FAILED'
  | 'CIRCUIT_OPEN'
  | 'ENDPOINT_SATURATED'
  // Infrastructure: waiting and retrying is the answer.
  | 'REDIS_UNAVAILABLE'
  | 'KAFKA_UNAVAILABLE'
  | 'REGISTRY_UNAVAILABLE'
  | 'TABLE_NOT_READY'
  | 'SHUTTING_DOWN';

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
