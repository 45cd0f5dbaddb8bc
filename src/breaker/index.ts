export { type Admission, CircuitBreaker, type CircuitBreakerOptions, type Transition } from './circuit-breaker.js';
export { statusEvent, type WebhookStatusEvent } from './status.js';
