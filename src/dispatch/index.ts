export { DeliveryRunner, type DeliveryRunnerDeps, type RunInput, refOf } from './runner.js';
