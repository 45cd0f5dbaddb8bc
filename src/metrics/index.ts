export { Metrics } from './metrics.js';
export { type HealthCheck, startMetricsServer, type MetricsServer, type MetricsServerOptions } from './server.js';
