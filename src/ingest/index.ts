export { Intake, type IntakeDeps } from './intake.js';
export {
  EventPipeline,
  type EventPipelineDeps,
  filterContext,
  type MatchResult,
  subscriptionMatches,
} from './pipeline.js';
export { RetryHandler, type RetryHandlerDeps } from './retry-handler.js';
