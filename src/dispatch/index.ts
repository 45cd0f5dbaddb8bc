export { DeliveryRunner, type DeliveryRunnerDeps, endpointOf, inputFromRecord, refOf, type RunInput } from './runner.js';
