import { BlueWebhooksError, errorMessage } from './errors.js';

/** Kafka client failures are infrastructure trouble: wait and try again. */
export function kafkaError(what: string, err: unknown): BlueWebhooksError {
  if (err instanceof BlueWebhooksError) return err;
  return new BlueWebhooksError('KAFKA_UNAVAILABLE', `kafka: ${what}: ${errorMessage(err)}`, {
    retriable: true,
    cause: err,
  });
}

// Broker answers that no retry of the same records can change.
const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/**
 * Whether a kafkajs error (or anything in its cause chain) is the broker refusing records as too
 * large. kafkajs wraps the protocol error in KafkaJSNonRetriableError; its `type` says which.
 */
export function isRecordTooLarge(err: unknown): boolean {
  for (
    let e = err as { type?: unknown; cause?: unknown; errors?: unknown[] } | undefined, depth = 0;
    e && depth < 8;
    depth++
  ) {
    if (typeof e.type === 'string' && TOO_LARGE.has(e.type)) return true;
    if (Array.isArray(e.errors) && e.errors.some(isRecordTooLarge)) return true;
    e = e.cause as typeof e;
  }
  return false;
}
