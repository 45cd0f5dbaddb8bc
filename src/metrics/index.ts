export { Metrics } from './metrics.js';
export { type HealthCheck, type MetricsServer, type MetricsServerOptions, startMetricsServer } from './server.js';
