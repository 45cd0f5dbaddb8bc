export { AvroPublisher, type AvroPublisherOptions } from './publisher.js';
export {
  type DeliveryRef,
  type OutcomeReason,
  type OutcomeState,
  REASON_OF_CODE,
  type ResultDetails,
  resultOf,
  type WebhookResult,
} from './result.js';
