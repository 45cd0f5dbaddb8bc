export { ResultsPublisher, type ResultsPublisherOptions } from './publisher.js';
export { type OutcomeState, resultOf, type WebhookResult } from './result.js';
