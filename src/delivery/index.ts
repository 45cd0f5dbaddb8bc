export { type AttemptReport, Deliverer, type Delivery } from './deliverer.js';
export { EndpointGate, type EndpointGateOptions, type GateEntry } from './endpoint-gate.js';
export {
  HttpClient,
  type HttpClientOptions,
  type HttpPost,
  type HttpPostResult,
  RESPONSE_SNIPPET_BYTES,
} from './http-client.js';
export { type AttemptOutcome, type AttemptResult, classifyAttempt, parseRetryAfter } from './outcome.js';
export { deliveryBody, deliveryId, type EventPayload, eventPayload } from './payload.js';
export { type RateDecision, RateLimiter } from './rate-limit.js';
export {
  blueSignature,
  safeEqual,
  standardSignature,
  type VerifyStandardOptions,
  verifyBlueSignature,
  verifyStandardSignature,
} from './signing.js';
export { embeddedIPv4, isInternalAddress, TargetGuard, TargetRefusedError } from './target-guard.js';
