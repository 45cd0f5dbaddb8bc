export { EventPipeline, type EventPipelineDeps, filterContext, type MatchResult, subscriptionMatches } from './pipeline.js';
