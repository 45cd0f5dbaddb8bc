export { endpointOf, inputFromRecord, type RunInput, refOf } from './run-input.js';
export { DeliveryRunner, type DeliveryRunnerDeps } from './runner.js';
