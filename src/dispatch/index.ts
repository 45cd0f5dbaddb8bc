export {
  DeliveryRunner,
  type DeliveryRunnerDeps,
  endpointOf,
  inputFromRecord,
  type RunInput,
  refOf,
} from './runner.js';
