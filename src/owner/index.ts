export {
  type ActionRefusal,
  type ActionResult,
  OwnerActions,
  type OwnerActionsOptions,
  TEST_EVENT_TYPE,
} from './actions.js';
export { type OwnerApi, type OwnerApiOptions, startOwnerApi } from './api.js';
export {
  type AttemptPage,
  DeliveryLog,
  type DeliveryLogOptions,
  type LoggedAttempt,
  unloggable,
} from './delivery-log.js';
export { LogConsumer, type LogConsumerOptions } from './log-consumer.js';
