export { DeliveryRunner, type DeliveryRunnerDeps, type RunInput, endpointOf, refOf } from './runner.js';
