// The send path. One attempt's stages, one name each: the HTTP answer (HttpAnswer; with its
// snippet and duration, HttpPostAnswer) is classified into an AttemptOutcome, reported with its
// timing as an AttemptReport; the runner then records it as a WebhookResult (src/results), whose
// `outcome` is an OutcomeState.
export { type AttemptOutcome, classifyAttempt, type HttpAnswer, parseRetryAfter } from './classify.js';
export { type AttemptReport, Deliverer, type Delivery } from './deliverer.js';
export { EndpointGate, type EndpointGateOptions, type GateEntry } from './endpoint-gate.js';
export {
  HttpClient,
  type HttpClientOptions,
  type HttpPost,
  type HttpPostAnswer,
  RESPONSE_SNIPPET_BYTES,
} from './http-client.js';
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
