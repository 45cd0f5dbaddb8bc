export { AvroPublisher, type AvroPublisherOptions } from './publisher.js';
export {
  type DeliveryRef,
  type OutcomeReason,
  type OutcomeState,
  type ResultDetails,
  resultOf,
  type WebhookResult,
} from './result.js';
