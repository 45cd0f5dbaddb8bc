import { BlueWebhooksError, errorMessage } from '../shared/index.js';

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
 * Whether a Kafka client's error (or anything in its cause chain, or among the errors it groups)
 * is the broker refusing records as too large. kafkajs names the protocol error in `type` (wrapped
 * in KafkaJSNonRetriableError); @platformatic/kafka in `apiId` (a ProtocolError inside the
 * ResponseError inside the MultipleErrors that `send` rejects with).
 */
export function isRecordTooLarge(err: unknown, depth = 0): boolean {
  const e = err as { type?: unknown; apiId?: unknown; cause?: unknown; errors?: unknown[] } | undefined;
  if (!e || depth >= 8) return false;
  if (TOO_LARGE.has(String(e.type)) || TOO_LARGE.has(String(e.apiId))) return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => isRecordTooLarge(inner, depth + 1))) return true;
  return isRecordTooLarge(e.cause, depth + 1);
}
