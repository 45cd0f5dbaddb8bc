import { BlueWebhooksError, errorMessage } from './errors.js';

/** Kafka client failures are infrastructure trouble: wait and try again. */
export function kafkaError(what: string, err: unknown): BlueWebhooksError {
  if (err instanceof BlueWebhooksError) return err;
  return new BlueWebhooksError('KAFKA_UNAVAILABLE', `kafka: ${what}: ${errorMessage(err)}`, { retriable: true, cause: err });
}
