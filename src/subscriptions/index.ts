export {
  compileFilter,
  FilterBudgetExceeded,
  type FilterContext,
  FilterError,
  type FilterPredicate,
} from './filter.js';
export { type ApplyResult, type RecordPosition, SubscriptionStore, type TableChange } from './store.js';
export {
  type ActiveSubscription,
  activate,
  decodeSubscription,
  publicView,
  SUBSCRIPTION_LIMITS,
  type Subscription,
  subscriptionToAvro,
  validateSubscription,
  validateUrl,
} from './subscription.js';
export { SubscriptionSyncer, type SubscriptionSyncerOptions } from './syncer.js';
export { type CandidateKey, candidateKey, SubscriptionTable, type SubscriptionTableOptions } from './table.js';
